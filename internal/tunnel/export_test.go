package tunnel

// BufsInUse is how many copy buffers are out of the pool.
func BufsInUse() int64 { return bufsInUse.Load() }

// Parks counts directions parked so far (park_linux.go).
func Parks() int64 { return parks.Load() }

// ParkedNow counts directions parked at this moment.
func ParkedNow() int { return theParker.parkedNow() }
