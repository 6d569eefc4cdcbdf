package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// TestDeviceInstallsAppsEndToEnd follows a FLECS device through the life of its app installs, as
// FLECS Core drives it: it activates with a license key, fetches a manifest with
// max_manifest_version=3.0.0 (what Core always sends, on Core's //api path), gets registry
// credentials for an official app and a 204 for an unofficial one, survives a server restart
// (the credentials' data key is in the database), and is refused with 403 on both once an admin
// revokes its license from another process, as the CLI does.
func TestDeviceInstallsAppsEndToEnd(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		e := newConsole(t, dsn, openconsole.Options{})

		// The admin's side: a license, two apps with their manifests, the official app's
		// registry credentials.
		lic, err := e.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
		if err != nil {
			t.Fatal(err)
		}
		official, unofficial := true, false
		for _, m := range []struct {
			doc  string
			flag *bool
		}{
			{manifestJSON(appOfficial, "1.0.0", "2.0.0"), &official},
			{manifestJSON(appOfficial, "1.0.0", "3.0.0"), nil},
			{manifestJSON(appCommunity, "1.0.0", "3.0.0"), &unofficial},
		} {
			if _, _, _, err := e.svc.AddManifest(ctx, []byte(m.doc), m.flag); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.svc.SetRegistryCredentials(ctx, appOfficial, openconsole.RegistryCredentials{Username: registryUser, Password: registryPassword}); err != nil {
			t.Fatal(err)
		}

		// The device activates, as Core does: key mode, a double slash.
		r := e.do(t, call{path: "/" + pathActivate, ctype: ctJSON, body: keyBody(lic.Key)})
		wantStatus(t, r, http.StatusOK)
		sid := r.session(t).ID
		wantValid(t, e.do(t, validateCall(sidHdr(sid))), true)

		manifest := getManifest("/"+manifestPath(appOfficial, "1.0.0", "max_manifest_version=3.0.0"), sid)
		tokenOfficial := tokenCall(sid, appVersionBody(appOfficial, "1.0.0"))
		tokenOfficial.path = "/" + pathTokens
		tokenCommunity := tokenCall(sid, appVersionBody(appCommunity, "1.0.0"))
		tokenCommunity.path = "/" + pathTokens

		wantManifest(t, e.do(t, manifest), appOfficial, "1.0.0", "3.0.0", sid)
		r = e.do(t, tokenOfficial)
		wantStatus(t, r, http.StatusOK)
		if u, p := r.text(t, "data.token.username"), r.text(t, "data.token.password"); u != registryUser || p != registryPassword {
			t.Errorf("token %q/%q; want the credentials set", u, p)
		}
		wantSID(t, r, sid)
		r = e.do(t, tokenCommunity)
		wantStatus(t, r, http.StatusNoContent)
		wantSID(t, r, sid)

		// After a restart everything still works: the session, and the credentials' key.
		e.restart(t)
		wantManifest(t, e.do(t, manifest), appOfficial, "1.0.0", "3.0.0", sid)
		r = e.do(t, tokenOfficial)
		wantStatus(t, r, http.StatusOK)
		if p := r.text(t, "data.token.password"); p != registryPassword {
			t.Errorf("token password after restart %q; want the one set", p)
		}

		// The admin revokes the license from another process on the same database.
		admin, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		adminSvc, err := openconsole.NewService(ctx, admin, openconsole.Options{Logger: e.opts.Logger})
		if err != nil {
			t.Fatal(err)
		}
		defer adminSvc.Close()
		if _, err := adminSvc.RevokeLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		// The server notices within CacheStaleness.
		deadline := time.Now().Add(openconsole.CacheStaleness + time.Second)
		for {
			r = e.do(t, manifest)
			if r.status == http.StatusForbidden || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		wantError(t, r, http.StatusForbidden, "Session not found")
		wantError(t, e.do(t, tokenOfficial), http.StatusForbidden, "Session not found")
		wantError(t, e.do(t, tokenCommunity), http.StatusForbidden, "Session not found")
		wantValid(t, e.do(t, validateCall(sidHdr(sid))), false)
		wantError(t, e.do(t, activateKey(lic.Key, sidHdr(sid))), http.StatusForbidden, "License found but invalid")

		// The admin sees what the device pulled: two official tokens and one unofficial, and
		// nothing for the refused requests.
		got, err := adminSvc.TokenIssuances(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		var creds, none int64
		for _, ti := range got {
			if ti.Credentials {
				creds += ti.Count
			} else {
				none += ti.Count
			}
		}
		if creds != 2 || none != 1 {
			t.Errorf("issuances: %d with credentials and %d without; want 2 and 1: %+v", creds, none, got)
		}
	})
}
