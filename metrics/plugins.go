package metrics

import "github.com/prometheus/client_golang/prometheus"

// PluginStats is what the metrics read of one loaded plugin at scrape
// time. The server fills it from plugins.Plugin.Stats, so this package
// does not depend on the plugin host.
type PluginStats struct {
	Name         string
	Instances    int               // live: busy, idle or being created
	Idle         int               // ready for a call
	MaxInstances int               // the pool's bound
	Failures     map[string]uint64 // by kind ("trap", "timeout", ...); every kind, zero included
	Replacements uint64            // instances created to replace discarded ones
}

type pluginCollector struct {
	stats func() []PluginStats

	failures, replacements, instances, idle, max *prometheus.Desc
}

// WatchPlugins exposes every plugin's failures by kind, instance
// replacements and pool occupancy from stats, read at each scrape. The
// plugin host counts these already; its hot path gains nothing here.
func (m *Metrics) WatchPlugins(stats func() []PluginStats) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "plugin", name), help,
			append([]string{"plugin"}, labels...), nil)
	}
	m.reg.MustRegister(&pluginCollector{
		stats: stats,
		failures: d("failures_total", "Failed hook calls, by kind (timeout, trap, out_of_memory, invalid_answer, "+
			"unavailable, exit, canceled); the plugin's on_error applied to each.", "kind"),
		replacements: d("instance_replacements_total", "Instances created to replace ones a failure discarded."),
		instances:    d("instances", "Live instances: busy, idle or being created."),
		idle:         d("instances_idle", "Instances ready for a call."),
		max:          d("instances_max", "The bound of the plugin's instance pool (max_instances)."),
	})
}

func (c *pluginCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.failures, c.replacements, c.instances, c.idle, c.max} {
		ch <- d
	}
}

func (c *pluginCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.stats() {
		for kind, n := range p.Failures {
			ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(n), p.Name, kind)
		}
		ch <- prometheus.MustNewConstMetric(c.replacements, prometheus.CounterValue, float64(p.Replacements), p.Name)
		ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(p.Instances), p.Name)
		ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(p.Idle), p.Name)
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(p.MaxInstances), p.Name)
	}
}
