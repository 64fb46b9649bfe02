package config

import (
	"regexp"
	"strconv"
	"strings"
)

// positions maps each key of a TOML document to the line that sets it. The
// TOML library reports lines only for syntax and type errors, not for
// unknown keys or for values that are well-typed but wrong, so this small
// scanner recovers them. Keys inside arrays of tables carry the element's
// index: "plugins[1].timeout". It understands the subset of TOML a config
// file uses (tables, arrays of tables, key = value, dotted keys); for
// anything it cannot place, errors simply go without a line.
type positions map[string]int

var (
	arrayHeader = regexp.MustCompile(`^\[\[\s*([^\]]+?)\s*\]\]`)
	tableHeader = regexp.MustCompile(`^\[\s*([^\]]+?)\s*\]`)
	keyValue    = regexp.MustCompile(`^("[^"]*"|'[^']*'|[A-Za-z0-9_.\-" ]+?)\s*=`)
)

func scanPositions(data string) positions {
	pos := positions{}
	table := ""
	arrays := map[string]int{} // array-of-tables path -> elements seen
	for i, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case arrayHeader.MatchString(line):
			name := resolveArray(cleanKey(arrayHeader.FindStringSubmatch(line)[1]), arrays)
			table = name + "[" + strconv.Itoa(arrays[name]) + "]"
			arrays[name]++
			pos.set(table, i+1)
		case tableHeader.MatchString(line):
			table = resolveTable(cleanKey(tableHeader.FindStringSubmatch(line)[1]), arrays)
			pos.set(table, i+1)
		case keyValue.MatchString(line):
			key := cleanKey(keyValue.FindStringSubmatch(line)[1])
			pos.set(join(table, key), i+1)
		}
	}
	return pos
}

func (p positions) set(key string, line int) {
	if _, seen := p[key]; !seen {
		p[key] = line
	}
}

// resolveTable turns "plugins.config" into "plugins[2].config" when
// "plugins" is an array of tables whose last element so far is index 2.
func resolveTable(name string, arrays map[string]int) string {
	parts := strings.Split(name, ".")
	out := ""
	for _, p := range parts {
		out = join(out, p)
		if n, ok := arrays[out]; ok && n > 0 {
			out += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return out
}

// resolveArray resolves the parents of an array-of-tables name but not the
// name itself: "[[plugins]]" names the array, whose next element follows.
func resolveArray(name string, arrays map[string]int) string {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return name
	}
	return join(resolveTable(name[:i], arrays), name[i+1:])
}

func cleanKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

func join(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}

var indexSuffix = regexp.MustCompile(`\[\d+\]`)

// lineOf returns the line of an exact key, or of the nearest enclosing
// table when the key itself was not written (a default left in place).
func (p positions) lineOf(key string) int {
	for k := key; k != ""; {
		if l, ok := p[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// findUnindexed locates a key reported without array indexes (as the TOML
// library reports undecoded keys: "plugins.nmae"), skipping lines already
// claimed by an earlier report of the same key. It returns the indexed key
// and its line.
func (p positions) findUnindexed(key string, claimed map[int]bool) (string, int) {
	best, bestLine := key, 0
	for k, l := range p {
		if claimed[l] || indexSuffix.ReplaceAllString(k, "") != key {
			continue
		}
		if bestLine == 0 || l < bestLine {
			best, bestLine = k, l
		}
	}
	return best, bestLine
}
