package usersig

import "errors"

// Reasons Verify refuses a token; each wraps one of them.
var (
	ErrMalformed        = errors.New("malformed user signature")
	ErrAlgorithm        = errors.New("user signature algorithm is not EdDSA")
	ErrBadSignature     = errors.New("user signature does not verify with the key")
	ErrExpired          = errors.New("user signature expired")
	ErrNotYetValid      = errors.New("user signature not yet valid")
	ErrWrongAudience    = errors.New("user signature is not for tally")
	ErrBadUserID        = errors.New("user signature's user ID is invalid")
	ErrLifetimeTooLong  = errors.New("user signature's lifetime is too long")
	ErrTooLarge         = errors.New("user signature too large")
	ErrInvalidKey       = errors.New("invalid user signature key")
	ErrInvalidParameter = errors.New("invalid parameter")
)
