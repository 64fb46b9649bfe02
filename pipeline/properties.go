package pipeline

import (
	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// parseProperties works out the message's header properties once: from the
// cache when this identity's entry was computed from this very header,
// otherwise by parsing it and storing the result. An entry computed from
// another header (a different message under a colliding Message-ID) is
// never served: the cache drops it and the header is parsed afresh.
func (s *session) parseProperties() {
	fields := make([]cache.Field, len(s.ev.Headers))
	for i, h := range s.ev.Headers {
		fields[i] = cache.Field{Name: h.Name, Value: h.Value}
	}
	opts := cache.ParseOptions{StampHeader: s.p.stamps.Header()}
	var props *cache.Properties
	if c := s.p.cache; c != nil {
		key, src := cache.Key(s.msg.identity), cache.SourceOf(fields)
		var outcome cache.Outcome
		if props, outcome = c.Lookup(key, src); outcome != cache.Hit {
			if outcome == cache.Mismatch {
				s.p.log.Warn("property cache: another header under this identity; parsed afresh", s.logArgs()...)
			}
			props = cache.Parse(fields, opts)
			c.Store(key, src, props)
		}
	} else {
		props = cache.Parse(fields, opts)
	}
	s.msg.props, s.msg.hasProps = PropertiesView(props), true
}

// PropertiesView is header properties as plugins see them (the properties
// host function), in a message and at the delay hook alike.
func PropertiesView(p *cache.Properties) abi.Properties {
	out := abi.Properties{
		MessageID: p.MessageID, From: p.From, FromName: p.FromName, Sender: p.Sender,
		ToCount: p.ToCount, CcCount: p.CcCount, Subject: p.Subject, ContentType: p.ContentType,
		ReceivedCount: p.ReceivedCount, ListID: p.ListID, AutoSubmitted: p.AutoSubmitted,
		Precedence: p.Precedence, IsDeliveryReport: p.IsDeliveryReport, HeaderCount: p.HeaderCount,
		HeaderBytes: p.HeaderBytes, Problems: p.Problems,
	}
	if !p.Date.IsZero() {
		out.Date = p.Date.Unix()
	}
	return out
}
