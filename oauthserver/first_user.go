package oauthserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

const defaultFirstUser = "admin"

// createFirstUser makes the configured first user when there is no user at all. The
// store decides between instances starting together: only one creation succeeds, and
// only its password is logged.
func (s *Server) createFirstUser(ctx context.Context, repl *caddy.Replacer) error {
	f := s.FirstUser
	if f == nil || len(s.users) > 0 {
		return nil
	}
	name := f.Name
	if name == "" {
		name = defaultFirstUser
	}
	if err := validUserName(name); err != nil {
		return fmt.Errorf("first_user: %v", err)
	}
	stored, err := s.store.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("first_user: reading the stored users: %v", err)
	}
	if len(stored) > 0 {
		return nil
	}
	password := repl.ReplaceKnown(f.Password, "")
	generated := password == ""
	if generated {
		password = rand.Text()
	}
	if len(password) > maxPasswordLength {
		return fmt.Errorf("first_user: the password is longer than %d bytes", maxPasswordLength)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("first_user: %v", err)
	}
	err = s.store.CreateUser(ctx, User{Name: name, PasswordHash: string(hash), Groups: f.Groups})
	if errors.Is(err, ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("first_user: %v", err)
	}
	fields := []zap.Field{zap.String("user", name), zap.Strings("groups", f.Groups), zap.String("sign_in", s.Issuer+"/account")}
	if generated {
		// Shown once, as the bootstrap needs: the store keeps only the hash.
		s.logger.Warn("created the first user with a random password; sign in and change it on the account page (or: caddy mcp-user set "+name+" --password-stdin)",
			append(fields, zap.String("password", password))...)
	} else {
		s.logger.Info("created the first user with the configured password", fields...)
	}
	return nil
}
