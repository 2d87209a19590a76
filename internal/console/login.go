package console

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parkpage/parkpage/internal/api"
)

// loginData is the login form's state.
type loginData struct {
	User, Next, Error string
	Out               bool // just logged out
}

func init() {
	RegisterPage(Page{Path: "/login", Title: "Log in", Template: "login.html", Public: true, Bare: true, Data: loginPageData})
	registerRoute(Route{Pattern: "POST /login", Public: true, Handler: func(env *Env) http.Handler {
		return http.HandlerFunc(env.login)
	}})
	RegisterRoute("POST /logout", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if env.Auth != nil {
				env.Auth.Logout(w, r)
			}
			http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
		})
	})
}

// loginPageData is GET /login: the form, or straight on for a browser
// that needs no login or has a session.
func loginPageData(r *http.Request, env *Env) (any, error) {
	next := safeNext(r.URL.Query().Get("next"))
	if env.Auth == nil || !env.Auth.LoginRequired() || env.Auth.User(r) != "" {
		return Redirect(next), nil
	}
	return loginData{User: "admin", Next: next, Out: r.URL.Query().Get("out") != ""}, nil
}

func (env *Env) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		env.Console.RenderPage(w, r, http.StatusBadRequest, "/login", loginData{User: "admin", Error: "The form could not be read."})
		return
	}
	user := strings.TrimSpace(r.PostFormValue("user"))
	next := safeNext(r.PostFormValue("next"))
	if env.Auth == nil || !env.Auth.LoginRequired() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	err := env.Auth.Login(w, r, user, r.PostFormValue("password"))
	var te *api.ThrottledError
	switch {
	case err == nil:
		http.Redirect(w, r, next, http.StatusSeeOther)
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int(te.Retry/time.Second)+1))
		env.Console.RenderPage(w, r, http.StatusTooManyRequests, "/login", loginData{User: user, Next: next, Error: "Too many failed attempts from this device. " + strings.TrimPrefix(te.Error(), "too many failed logins from this address: ") + "."})
	case errors.Is(err, api.ErrBadLogin):
		env.Log.Warn("console login failed", "user", user, "source", r.RemoteAddr)
		env.Console.RenderPage(w, r, http.StatusUnauthorized, "/login", loginData{User: user, Next: next, Error: "Wrong user name or password."})
	default:
		env.Console.RenderPage(w, r, http.StatusInternalServerError, "/login", loginData{User: user, Next: next, Error: err.Error()})
	}
}

// safeNext keeps a post-login destination on this server.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}
