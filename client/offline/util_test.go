package offline_test

import (
	"encoding/hex"
	"strconv"
)

func hexs(b []byte) string { return hex.EncodeToString(b) }
func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
