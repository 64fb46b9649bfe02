//go:build !linux

package plugins

import "errors"

const reserveSupported = false

type reservation struct{ mem []byte }

func reserve(uint64) (*reservation, error) { return nil, errors.New("not supported") }

func (r *reservation) empty() {}

func (r *reservation) unmap() {}
