package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// Record is a ledger record as the API shows it.
type Record struct {
	ID            string          `json:"id"`
	State         retry.State     `json:"state"`
	FirstSeen     time.Time       `json:"first_seen"`
	LastSeen      time.Time       `json:"last_seen"`
	Attempts      int             `json:"attempts"`
	Sender        string          `json:"sender"`
	Recipients    []string        `json:"recipients"`
	LastReason    *retry.Reason   `json:"last_reason,omitempty"`
	ExpiredAt     *time.Time      `json:"expired_at,omitempty"`
	ExpiredReason *retry.Reason   `json:"expired_reason,omitempty"`
	Notices       int             `json:"notices"`
	History       []retry.Attempt `json:"history,omitempty"`
	Subject       string          `json:"subject,omitempty"`
}

func view(r retry.Record, withHistory bool) Record {
	v := Record{ID: r.ID.String(), State: r.State, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen,
		Attempts: r.Attempts, Sender: r.Sender, Recipients: r.Recipients, Notices: len(r.Notices)}
	if n := len(r.History); n > 0 {
		v.LastReason = &r.History[n-1].Reason
	}
	if !r.ExpiredAt.IsZero() {
		v.ExpiredAt, v.ExpiredReason = &r.ExpiredAt, &r.ExpiredReason
	}
	if withHistory {
		v.History = r.History
	}
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, "Subject") {
			v.Subject = h.Value
			break
		}
	}
	return v
}

func (a *api) listQueue(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := retry.Filter{State: retry.State(q.Get("state"))}
	if f.State != "" && !f.State.Valid() {
		writeError(w, http.StatusBadRequest, fmt.Errorf("state %q: want one of %v", f.State, retry.States))
		return
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a positive number", s))
			return
		}
		f.Limit = n
	}
	if s := q.Get("after"); s != "" {
		id, err := stamp.ParseIdentity(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		f.After = id
	}
	recs, err := a.o.Ledger.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	out := make([]Record, len(recs))
	for i, rec := range recs {
		out[i] = view(rec, false)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) showRecord(w http.ResponseWriter, r *http.Request) {
	id, ok := pathIdentity(w, r)
	if !ok {
		return
	}
	rec, err := a.o.Ledger.Get(r.Context(), id)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, view(rec, true))
}

// transition applies an administrator's decision to one record.
func (a *api) transition(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathIdentity(w, r)
		if !ok {
			return
		}
		var rec retry.Record
		var err error
		switch op {
		case "release":
			rec, err = a.o.Ledger.Release(r.Context(), id)
		case "hold":
			rec, err = a.o.Ledger.Hold(r.Context(), id)
		default:
			reason := retry.Reason{Code: 550, Enhanced: "5.4.7", Text: "Message expired by the administrator"}
			rec, err = a.o.Ledger.Expire(r.Context(), id, a.o.Clock(), reason)
		}
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		a.o.Logger.Info("admin: queue "+op, "identity", id.String(), "state", rec.State)
		writeJSON(w, http.StatusOK, view(rec, false))
	}
}

func (a *api) purge(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	age, err := time.ParseDuration(q.Get("older_than"))
	if err != nil || age <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("older_than %q: want a positive duration like 72h", q.Get("older_than")))
		return
	}
	p := retry.PurgeFilter{UpdatedBefore: a.o.Clock().Add(-age), States: []retry.State{retry.Passed, retry.Expired}}
	if states := q["state"]; len(states) > 0 {
		p.States = p.States[:0]
		for _, s := range states {
			if !retry.State(s).Valid() {
				writeError(w, http.StatusBadRequest, fmt.Errorf("state %q: want one of %v", s, retry.States))
				return
			}
			p.States = append(p.States, retry.State(s))
		}
	}
	n, err := a.o.Ledger.Purge(r.Context(), p)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	a.o.Logger.Info("admin: queue purged", "records", n, "older_than", age.String(), "states", p.States)
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
}

func pathIdentity(w http.ResponseWriter, r *http.Request) (stamp.Identity, bool) {
	id, err := stamp.ParseIdentity(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return id, false
	}
	return id, true
}

// statusOf maps ledger errors onto HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, retry.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, retry.ErrTransition), errors.Is(err, retry.ErrInvalid):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
