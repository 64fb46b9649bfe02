package config

// Limits is the [limits] table: what one message may bring, and what a
// message over a limit gets.
type Limits struct {
	MaxHeaders     int    `toml:"max_headers"`
	MaxHeaderBytes Size   `toml:"max_header_bytes"`
	MaxBodyBytes   Size   `toml:"max_body_bytes"`
	OnLimit        string `toml:"on_limit"`
}

// Bounds of the limits: below them real mail would trip them, above them
// the limit no longer protects the server's memory.
const (
	maxMaxHeaders     = 1_000_000
	minMaxHeaderBytes = 16 << 10
	maxMaxHeaderBytes = 1 << 30
	minMaxBodyBytes   = 64 << 10
)

func (c *Config) validateLimits(v *validator) {
	l := &c.Limits
	if l.MaxHeaders < 1 || l.MaxHeaders > maxMaxHeaders {
		v.fail("limits.max_headers", "%d: must be from 1 to %d", l.MaxHeaders, maxMaxHeaders)
	}
	if l.MaxHeaderBytes < minMaxHeaderBytes || l.MaxHeaderBytes > maxMaxHeaderBytes {
		v.fail("limits.max_header_bytes", "%s: must be from %s to %s", l.MaxHeaderBytes, Size(minMaxHeaderBytes), Size(maxMaxHeaderBytes))
	}
	if l.MaxBodyBytes < minMaxBodyBytes {
		v.fail("limits.max_body_bytes", "%s: must be at least %s (one body packet)", l.MaxBodyBytes, Size(minMaxBodyBytes))
	}
	if !oneOf(l.OnLimit, "reject", "accept", "truncate") {
		v.fail("limits.on_limit", "%q: want reject, accept or truncate", l.OnLimit)
	}
}
