package config

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// FlattenPluginConfig turns a [plugins.config] table into the entries
// handed to the plugin's wasmilter_init: nested tables become dotted keys,
// arrays become several values, every value is rendered as text. Keys come
// out sorted, so a plugin sees the same bytes for the same config.
func FlattenPluginConfig(table map[string]any) ([]abi.ConfigEntry, error) {
	var out []abi.ConfigEntry
	if err := flatten("", table, &out); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b abi.ConfigEntry) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out, nil
}

func flatten(prefix string, table map[string]any, out *[]abi.ConfigEntry) error {
	for k, v := range table {
		key := join(prefix, k)
		switch v := v.(type) {
		case map[string]any:
			if err := flatten(key, v, out); err != nil {
				return err
			}
		case []map[string]any:
			for i, t := range v {
				if err := flatten(key+"."+strconv.Itoa(i), t, out); err != nil {
					return err
				}
			}
		case []any:
			values := make([]string, 0, len(v))
			for i, e := range v {
				s, err := scalar(e)
				if err != nil {
					return fmt.Errorf("%s[%d]: %v", key, i, err)
				}
				values = append(values, s)
			}
			*out = append(*out, abi.ConfigEntry{Key: key, Values: values})
		default:
			s, err := scalar(v)
			if err != nil {
				return fmt.Errorf("%s: %v", key, err)
			}
			*out = append(*out, abi.ConfigEntry{Key: key, Values: []string{s}})
		}
	}
	return nil
}

func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	}
	return "", fmt.Errorf("a %T cannot be handed to a plugin (use strings, numbers, booleans, dates, arrays or tables)", v)
}
