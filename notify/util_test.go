package notify_test

import (
	"bufio"
	"bytes"
)

func bufioOf(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
