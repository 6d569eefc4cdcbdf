package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"openconsole"
	"openconsole/sqlstore"
)

// The admin commands of apps (manifests, registry credentials, download tokens), products and
// subscriptions (wire contract §2.6 to §2.11).

// readInput reads a file named on the command line, or standard input for "-", at most limit bytes.
func (e *cliEnv) readInput(name string, limit int64) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		if e.stdin == nil {
			return nil, errors.New("no standard input")
		}
		r = e.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return b, nil
}

type manifestOut struct {
	App           string    `json:"app"`
	Version       string    `json:"version"`
	SchemaVersion string    `json:"schemaVersion"`
	Official      bool      `json:"official"`
	CreatedAt     time.Time `json:"createdAt"`
	Replaced      *bool     `json:"replaced,omitempty"`
}

func cmdAppManifestAdd(e *cliEnv, args []string) int {
	fs := e.flags("app manifest add")
	official := fs.Bool("official", false, "mark the app official: devices get registry credentials for it (--official=false unmarks it; default: a new app is unofficial, a known one keeps its flag)")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	var flagSet *bool
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "official" {
			flagSet = official
		}
	})
	doc, err := e.readInput(pos[0], openconsole.MaxManifestBytes)
	if err != nil {
		return e.fail(err)
	}
	// Check before opening the database: an invalid manifest never touches it.
	if _, err := openconsole.ParseManifest(doc); err != nil {
		return e.fail(fmt.Errorf("%s: %w", pos[0], err))
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		m, app, replaced, err := svc.AddManifest(e.ctx, doc, flagSet)
		if err != nil {
			return nil, err
		}
		return manifestOut{m.App, m.Version, m.SchemaVersion, app.Official, m.CreatedAt, &replaced}, nil
	})
}

func cmdAppManifestList(e *cliEnv, args []string) int {
	fs := e.flags("app manifest list")
	app := fs.String("app", "", "only the manifests of this app")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		ms, err := svc.Manifests(e.ctx, *app)
		if err != nil {
			return nil, err
		}
		official := map[string]bool{}
		out := make([]manifestOut, 0, len(ms))
		for _, m := range ms {
			o, known := official[m.App]
			if !known {
				a, err := svc.App(e.ctx, m.App)
				if err != nil {
					return nil, err
				}
				o, official[m.App] = a.Official, a.Official
			}
			out = append(out, manifestOut{m.App, m.Version, m.SchemaVersion, o, m.CreatedAt, nil})
		}
		return out, nil
	})
}

func cmdAppManifestRemove(e *cliEnv, args []string) int {
	fs := e.flags("app manifest remove")
	schema := fs.String("schema-version", "", "remove only the variant with this _schemaVersion (default: every variant)")
	pos, code, ok := e.parse(fs, args, 2)
	if !ok {
		return code
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		n, err := svc.RemoveManifest(e.ctx, pos[0], pos[1], *schema)
		if err != nil {
			return nil, err
		}
		var sv *string
		if *schema != "" {
			sv = schema
		}
		return struct {
			App           string  `json:"app"`
			Version       string  `json:"version"`
			SchemaVersion *string `json:"schemaVersion"`
			Removed       int     `json:"removed"`
		}{pos[0], pos[1], sv, n}, nil
	})
}

func cmdAppCredentialsSet(e *cliEnv, args []string) int {
	fs := e.flags("app credentials set")
	user := fs.String("username", "", "registry username (required)")
	pwFile := fs.String("password-file", "", "file holding the registry password (default, or -: standard input)")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	if *user == "" {
		return e.usageErr("app credentials set needs --username")
	}
	if *pwFile == "" {
		*pwFile = "-"
	}
	raw, err := e.readInput(*pwFile, 8192)
	if err != nil {
		return e.fail(fmt.Errorf("--password-file: %w", err))
	}
	password := strings.TrimRight(string(raw), "\r\n")
	if password == "" {
		return e.fail(errors.New("no registry password given"))
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		if err := svc.SetRegistryCredentials(e.ctx, pos[0], openconsole.RegistryCredentials{Username: *user, Password: password}); err != nil {
			return nil, err
		}
		// The password is never printed.
		return struct {
			App            string `json:"app"`
			Username       string `json:"username"`
			CredentialsSet bool   `json:"credentialsSet"`
		}{pos[0], *user, true}, nil
	})
}

type tokenIssuanceOut struct {
	ID          int64     `json:"id"`
	Session     string    `json:"session"`
	App         string    `json:"app"`
	Version     string    `json:"version"`
	Credentials bool      `json:"credentials"`
	IssuedAt    time.Time `json:"issuedAt"`
}

func cmdAppTokensList(e *cliEnv, args []string) int {
	fs := e.flags("app tokens list")
	session := fs.String("session", "", "only the tokens of this session")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		tis, err := svc.TokenIssuances(e.ctx, *session)
		if err != nil {
			return nil, err
		}
		out := make([]tokenIssuanceOut, 0, len(tis))
		for _, ti := range tis {
			out = append(out, tokenIssuanceOut{ti.ID, ti.SessionID, ti.App, ti.Version, ti.Credentials, ti.IssuedAt})
		}
		return out, nil
	})
}

type productOut struct {
	ID            int64   `json:"id"`
	Name          string  `json:"name"`
	StoreID       int64   `json:"storeId"`
	App           *string `json:"app"`
	RatingCount   int     `json:"ratingCount"`
	AverageRating float64 `json:"averageRating"`
}

func productsOut(ps []openconsole.Product) []productOut {
	out := make([]productOut, 0, len(ps))
	for _, p := range ps {
		o := productOut{ID: p.ID, Name: p.Name, StoreID: p.StoreID, RatingCount: p.RatingCount}
		if p.App != "" {
			app := p.App
			o.App = &app
		}
		if p.RatingCount > 0 {
			o.AverageRating = float64(int(p.RatingSum/float64(p.RatingCount)*100+0.5)) / 100
		}
		out = append(out, o)
	}
	return out
}

func cmdProductImport(e *cliEnv, args []string) int {
	fs := e.flags("product import")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	doc, err := e.readInput(pos[0], 256<<20)
	if err != nil {
		return e.fail(err)
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		ps, err := svc.ImportProducts(e.ctx, doc)
		if err != nil {
			return nil, err
		}
		return productsOut(ps), nil
	})
}

func cmdProductList(e *cliEnv, args []string) int {
	fs := e.flags("product list")
	var store *int64
	fs.Func("store", "only the products of this store id", func(v string) error {
		var n int64
		if _, err := fmt.Sscan(v, &n); err != nil || n < 0 {
			return errors.New("want a store id, a non-negative integer")
		}
		store = &n
		return nil
	})
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		ps, _, err := svc.Products(e.ctx, openconsole.ProductQuery{StoreID: store})
		if err != nil {
			return nil, err
		}
		return productsOut(ps), nil
	})
}

type subscriptionOut struct {
	ID        int64     `json:"id"`
	User      string    `json:"user"`
	ProductID int64     `json:"productId"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

func cmdSubscriptionAdd(e *cliEnv, args []string) int {
	fs := e.flags("subscription add")
	user := fs.String("user", "", "username of the subscriber (required)")
	product := fs.Int64("product", 0, "product id (required)")
	status := fs.String("status", "active", "status: "+strings.Join(openconsole.SubscriptionStatuses, ", "))
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *user == "" || *product <= 0 {
		return e.usageErr("subscription add needs --user and --product")
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		sub, err := svc.AddSubscription(e.ctx, *user, *product, *status)
		if err != nil {
			return nil, err
		}
		return subscriptionOut{sub.ID, *user, sub.ProductID, sub.Status, sub.CreatedAt}, nil
	})
}

func cmdSubscriptionList(e *cliEnv, args []string) int {
	fs := e.flags("subscription list")
	user := fs.String("user", "", "only the subscriptions of this user")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	svc, st, done, err := e.open(sqlstore.Options{}, openconsole.Options{})
	if err != nil {
		return e.fail(err)
	}
	defer done()
	var userID int64
	if *user != "" {
		u, err := st.UserByUsername(e.ctx, *user)
		if errors.Is(err, openconsole.ErrNotFound) {
			return e.fail(fmt.Errorf("user %q not found", *user))
		} else if err != nil {
			return e.fail(err)
		}
		userID = u.ID
	}
	subs, err := svc.Subscriptions(e.ctx, userID, nil)
	if err != nil {
		return e.fail(err)
	}
	owners := &ownerNames{e: e, svc: svc}
	out := make([]subscriptionOut, 0, len(subs))
	for _, s := range subs {
		name := ""
		if n := owners.name(s.UserID); n != nil {
			name = *n
		}
		out = append(out, subscriptionOut{s.ID, name, s.ProductID, s.Status, s.CreatedAt})
	}
	return e.print(out)
}
