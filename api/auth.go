package api

import (
	"net/http"

	"openconsole"
)

type loginRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
	IssueJWT *bool   `json:"issueJWT"`
}

type userJSON struct {
	ID          int64  `json:"ID"`
	DisplayName string `json:"display_name"`
	UserEmail   string `json:"user_email"`
	UserLogin   string `json:"user_login"`
}

type jwtJSON struct {
	Token        string `json:"token"`
	TokenExpires int64  `json:"token_expires"`
}

type flagsJSON struct {
	IsVendor       bool `json:"isVendor"`
	IsWhitelabeled bool `json:"isWhitelabeled"`
}

// loginData is data of a login 200 (wire contract §2.1), with the flat copy of the user fields
// that older FLECS web apps read.
type loginData struct {
	User         userJSON  `json:"user"`
	JWT          jwtJSON   `json:"jwt"`
	FeatureFlags flagsJSON `json:"feature_flags"`
	userJSON
}

// login is POST /api/v2/auth/login. A JWT is issued unless issueJWT is explicitly false.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.Username == nil || *req.Username == "" {
		s.fail(w, r, openconsole.MissingField("username"), "Could not log in")
		return
	}
	if req.Password == nil {
		s.fail(w, r, openconsole.MissingField("password"), "Could not log in")
		return
	}
	res, err := s.svc.Login(r.Context(), openconsole.LoginInput{
		Username: *req.Username, Password: *req.Password, IssueJWT: req.IssueJWT == nil || *req.IssueJWT,
		ClientAddr: s.clientAddr(r),
	})
	if err != nil {
		s.fail(w, r, err, "Could not log in")
		return
	}
	u := userJSON{ID: res.User.ID, DisplayName: res.User.DisplayName, UserEmail: res.User.Email, UserLogin: res.User.Username}
	writeData(w, http.StatusOK, loginData{
		User:         u,
		JWT:          jwtJSON{Token: res.Token, TokenExpires: res.Expires},
		FeatureFlags: flagsJSON{IsVendor: res.User.Vendor, IsWhitelabeled: res.User.Whitelabeled},
		userJSON:     u,
	})
}

type authValidateRequest struct {
	JWT *struct {
		Token *string `json:"token"`
	} `json:"jwt"`
}

// authValidateData is data of an auth validate 200 (wire contract §2.2): isValid, the nested
// feature flags, and the token's claims for older web apps.
type authValidateData struct {
	IsValid      bool `json:"isValid"`
	FeatureFlags struct {
		FF flagsJSON `json:"ff"`
	} `json:"feature_flags"`
	openconsole.Claims
}

// authValidate is POST /api/v2/auth/validate: 200 for a valid token, 403 for any other.
func (s *Server) authValidate(w http.ResponseWriter, r *http.Request) {
	var req authValidateRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.JWT == nil || req.JWT.Token == nil {
		s.fail(w, r, openconsole.MissingField("jwt.token"), "Could not validate token")
		return
	}
	u, claims, err := s.svc.Authenticate(r.Context(), *req.JWT.Token)
	if openconsole.ErrorCode(err) == openconsole.EUNAUTHORIZED {
		err = openconsole.ErrTokenRefused
	}
	if err != nil {
		s.fail(w, r, err, "Could not validate token")
		return
	}
	var d authValidateData
	d.IsValid = true
	d.FeatureFlags.FF = flagsJSON{IsVendor: u.Vendor, IsWhitelabeled: u.Whitelabeled}
	d.Claims = claims
	writeData(w, http.StatusOK, d)
}
