package tunnel

// BufsInUse is how many copy buffers are out of the pool.
func BufsInUse() int64 { return bufsInUse.Load() }
