package tlsconf

import "time"

// SetWatchReady makes Watch call ready once its watches are in place, so a
// test changes files only when the change can be seen.
func SetWatchReady(s *Store, ready func()) { s.watchReady = ready }

// SetClock makes s verify peers at the times clock returns.
func SetClock(s *Store, clock func() time.Time) { s.clock = clock }
