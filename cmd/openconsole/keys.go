package main

import (
	"openconsole"
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
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		id, err := svc.RotateSigningKey(e.ctx, *dropOld)
		if err != nil {
			return nil, err
		}
		return struct {
			KeyID      string `json:"keyId"`
			DroppedOld bool   `json:"droppedOld"`
		}{id, *dropOld}, nil
	})
}
