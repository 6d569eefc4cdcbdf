package main

import (
	"openconsole"
	"openconsole/sqlstore"
)

// cmdJWTRotate adds a new JWT signing key. Servers sign with it from their next key refresh (within
// a minute); tokens signed before keep verifying until they expire, unless --drop-old deletes the
// old keys (after a leak: every token issued before stops verifying, within a minute everywhere).
func cmdJWTRotate(e *cliEnv, args []string) int {
	fs := e.flags("jwt rotate")
	dropOld := fs.Bool("drop-old", false, "delete every older key: all tokens issued so far stop verifying")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	svc, _, done, err := e.open(sqlstore.Options{}, openconsole.Options{})
	if err != nil {
		return e.fail(err)
	}
	defer done()
	id, err := svc.RotateSigningKey(e.ctx, *dropOld)
	if err != nil {
		return e.fail(err)
	}
	return e.print(struct {
		KeyID      string `json:"keyId"`
		DroppedOld bool   `json:"droppedOld"`
	}{id, *dropOld})
}
