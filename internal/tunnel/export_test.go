package tunnel

// Buffers is how many copy buffers the proxy's engine has out of the pools.
func (p *Proxy) Buffers() int64 { return p.engine.Buffers() }

// Parks counts directions parked so far by the proxy's engine.
func (p *Proxy) Parks() int64 { return p.engine.Parks() }

// Parked counts the proxy's directions parked at this moment.
func (p *Proxy) Parked() int { return p.engine.Parked() }
