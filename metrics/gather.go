package metrics

import (
	"fmt"

	dto "github.com/prometheus/client_model/go"
)

// Value returns the value of one series from g: a counter's or gauge's
// value, a histogram's sample count. labels are name, value pairs and must
// name every label of the series. It is for tests and tools that check a
// number without parsing the exposition format.
func (m *Metrics) Value(name string, labels ...string) (float64, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return 0, fmt.Errorf("gathering metrics: %w", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if hasLabels(s, labels) {
				return sampleValue(s), nil
			}
		}
		return 0, fmt.Errorf("metric %s has no series %v", name, labels)
	}
	return 0, fmt.Errorf("no metric %s", name)
}

func hasLabels(s *dto.Metric, labels []string) bool {
	if len(s.GetLabel())*2 != len(labels) {
		return false
	}
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func sampleValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	return s.GetUntyped().GetValue()
}
