package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wasmilter/wasmilter/admin"
)

// adminClient talks to a running server's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// adminFlags adds -config, -admin and -token and returns a constructor for
// the client they describe: -admin wins, else the config's [admin] listen.
func adminFlags(name string, stderr io.Writer) (*flag.FlagSet, func() (*adminClient, error)) {
	fs, cfgPath := newFlagSet(name, stderr)
	addr := fs.String("admin", "", "admin API address HOST:PORT (default: [admin] listen from the config)")
	token := fs.String("token", "", "bearer token (default: [admin] token from the config)")
	return fs, func() (*adminClient, error) {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return nil, err
		}
		c := &adminClient{base: cfg.Admin.Listen, token: cfg.Admin.Token, http: &http.Client{Timeout: 30 * time.Second}}
		if *addr != "" {
			c.base = *addr
		}
		if *token != "" {
			c.token = *token
		}
		if c.base == "" {
			return nil, errors.New("the admin API is off ([admin] listen is \"\"); give -admin HOST:PORT")
		}
		c.base = "http://" + c.base
		return c, nil
	}
}

// do sends a request and decodes the JSON answer into out; an error answer
// becomes an error carrying the server's text.
func (c *adminClient) do(method, path string, query url.Values, out any) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching the server's admin API (is wasmilter serve running?): %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e admin.Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("admin API: %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, fmt.Errorf("admin API answered something unexpected: %w", err)
		}
	}
	return body, nil
}

const queueUsage = `usage: wasmilter queue COMMAND [flags]

  list [-state S] [-limit N] [-json]   messages wasmilter holds records of
  show ID                              one record with its attempts
  release ID                           its next attempt passes
  hold ID                              its next attempt goes to the MTA's hold queue
  expire ID                            its next attempt is refused with 550 5.4.7
  purge -older-than D [-state S]...    delete records not updated for D (default: passed and expired)

Each takes -config F (for [admin] listen and token), or -admin HOST:PORT and -token T.
`

func runQueue(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, queueUsage)
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	fs, client := adminFlags("queue "+sub, stderr)
	switch sub {
	case "list":
		return queueList(fs, client, rest, stdout)
	case "show", "release", "hold", "expire":
		return queueOne(fs, client, sub, rest, stdout)
	case "purge":
		return queuePurge(fs, client, rest, stdout)
	}
	fmt.Fprintf(stderr, "wasmilter queue: unknown command %q\n\n%s", sub, queueUsage)
	return flag.ErrHelp
}

func queueList(fs *flag.FlagSet, client func() (*adminClient, error), args []string, stdout io.Writer) error {
	state := fs.String("state", "", "only records in this state (deferred, released, held, passed, expired)")
	limit := fs.Int("limit", 0, "at most this many (default: the server's limit, 1000)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *state != "" {
		q.Set("state", *state)
	}
	if *limit > 0 {
		q.Set("limit", fmt.Sprint(*limit))
	}
	var recs []admin.Record
	body, err := c.do("GET", "/v1/queue", q, &recs)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPTS\tFIRST SEEN\tSENDER\tSUBJECT")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t<%s>\t%s\n", r.ID, r.State, r.Attempts, r.FirstSeen.Format(time.RFC3339),
			r.Sender, truncate(r.Subject, 50))
	}
	return tw.Flush()
}

func queueOne(fs *flag.FlagSet, client func() (*adminClient, error), op string, args []string, stdout io.Writer) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("queue %s takes one record ID (see wasmilter queue list)", op)
	}
	c, err := client()
	if err != nil {
		return err
	}
	method, path := "POST", "/v1/queue/"+url.PathEscape(fs.Arg(0))+"/"+op
	if op == "show" {
		method, path = "GET", "/v1/queue/"+url.PathEscape(fs.Arg(0))
	}
	body, err := c.do(method, path, nil, nil)
	if err != nil {
		return err
	}
	return printIndented(stdout, body)
}

func queuePurge(fs *flag.FlagSet, client func() (*adminClient, error), args []string, stdout io.Writer) error {
	olderThan := fs.Duration("older-than", 0, "purge records not updated for this long, e.g. 72h (required)")
	var states stringList
	fs.Var(&states, "state", "purge records in this state, repeatable (default: passed and expired)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *olderThan <= 0 {
		return errors.New("queue purge needs -older-than, e.g. -older-than 72h")
	}
	c, err := client()
	if err != nil {
		return err
	}
	q := url.Values{"older_than": {olderThan.String()}}
	for _, s := range states {
		q.Add("state", s)
	}
	var got map[string]int
	if _, err := c.do("POST", "/v1/queue/purge", q, &got); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "purged %d records\n", got["purged"])
	return nil
}

const cacheUsage = `usage: wasmilter cache COMMAND [flags]

  stats [-json]      the property cache's entries, bytes, hits, misses, evictions
  flush [-key ID]    empty the cache (or drop one message's entry); messages in flight keep theirs

Each takes -config F (for [admin] listen and token), or -admin HOST:PORT and -token T.
`

func runCache(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, cacheUsage)
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	fs, client := adminFlags("cache "+sub, stderr)
	switch sub {
	case "stats":
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		c, err := client()
		if err != nil {
			return err
		}
		body, err := c.do("GET", "/v1/cache/stats", nil, nil)
		if err != nil {
			return err
		}
		if *asJSON {
			_, err := stdout.Write(body)
			return err
		}
		return printStats(stdout, body)
	case "flush":
		key := fs.String("key", "", "drop only this message identity's entry")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		c, err := client()
		if err != nil {
			return err
		}
		q := url.Values{}
		if *key != "" {
			q.Set("key", *key)
		}
		body, err := c.do("POST", "/v1/cache/flush", q, nil)
		if err != nil {
			return err
		}
		return printIndented(stdout, body)
	}
	fmt.Fprintf(stderr, "wasmilter cache: unknown command %q\n\n%s", sub, cacheUsage)
	return flag.ErrHelp
}

// printStats prints a JSON object as aligned "key  value" lines, nested
// objects flattened to dotted keys ("properties.entries").
func printStats(w io.Writer, body []byte) error {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return printIndented(w, body)
	}
	flat := map[string]any{}
	flatten("", m, flat)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, k := range sortedKeys(flat) {
		v, _ := json.Marshal(flat[k])
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	return tw.Flush()
}

func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := strings.ToLower(k)
		if prefix != "" {
			key = prefix + "." + key
		}
		if sub, ok := v.(map[string]any); ok {
			flatten(key, sub, out)
			continue
		}
		out[key] = v
	}
}

func printIndented(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		_, err := w.Write(body)
		return err
	}
	_, err := buf.WriteTo(w)
	return err
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// runReload asks the running server to read its configuration again, as
// SIGHUP does, and reports what it said: refused (the running config
// stays), or reloaded, with the settings that wait for a restart.
func runReload(args []string, stdout, stderr io.Writer) error {
	fs, client := adminFlags("reload", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	var out struct {
		RestartNeeded []string `json:"restart_needed"`
	}
	if _, err := c.do(http.MethodPost, "/v1/reload", nil, &out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "reloaded")
	if len(out.RestartNeeded) > 0 {
		fmt.Fprintf(stdout, "changed, but applied only after a restart: %s\n", strings.Join(out.RestartNeeded, ", "))
	}
	return nil
}
