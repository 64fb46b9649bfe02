package server

import (
	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/pipeline"
)

// withLimits sets the pipeline's per-message limits from [limits]. The
// config was validated, so on_limit parses; a value it does not know would
// have been refused there.
func withLimits(o pipeline.Options, cfg *config.Config) pipeline.Options {
	on, _ := pipeline.ParseOnLimit(cfg.Limits.OnLimit)
	o.MaxHeaders = cfg.Limits.MaxHeaders
	o.Limits = pipeline.Limits{MaxHeaderBytes: int64(cfg.Limits.MaxHeaderBytes),
		MaxBodyBytes: int64(cfg.Limits.MaxBodyBytes), OnLimit: on}
	return o
}
