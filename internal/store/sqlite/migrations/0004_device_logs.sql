-- 0004_device_logs: files devices upload (agent logs, diagnostics), kept
-- per device up to a retention count that the writer enforces.

CREATE TABLE device_logs (
	id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, -- never reused: IDs order uploads
	device_id   TEXT    NOT NULL REFERENCES devices (id),
	name        TEXT    NOT NULL,
	received_at INTEGER NOT NULL,
	size        INTEGER NOT NULL,
	data        BLOB    NOT NULL
) STRICT;

CREATE INDEX device_logs_device ON device_logs (device_id, id);
