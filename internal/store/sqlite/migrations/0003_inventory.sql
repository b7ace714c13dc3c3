-- 0003_inventory: indexes for paging the approval queue and the device
-- inventory by keyset (created_at/first_seen, id), so page 1,000 costs what
-- page 1 does, and for the state filters and counts.

DROP INDEX enrollment_requests_state;
CREATE INDEX enrollment_requests_state ON enrollment_requests (state, created_at, id);
CREATE INDEX enrollment_requests_created ON enrollment_requests (created_at, id);
CREATE INDEX devices_first_seen ON devices (first_seen, id);
CREATE INDEX devices_state ON devices (state, first_seen, id);
