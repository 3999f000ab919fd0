package authsvc

import "errors"

const MinChosenSecretLen = 16
const MaxSecretLen = 1024

type secretHasher struct{}

func newSecretHasher(p []byte) *secretHasher { return &secretHasher{} }
func GenerateSecret() (string, error)        { return "generatedgeneratedgeneratedgeneratedgenerat", nil }
func (h *secretHasher) hashGenerated(s string) string { return "$plain$" + s }
func (h *secretHasher) hashChosen(s string) (string, error) {
	if len(s) < 16 {
		return "", errors.New("short")
	}
	return "$plain$" + s, nil
}
func (h *secretHasher) hashArgon2(s string) (string, error) { return "$plain$" + s, nil }
func (h *secretHasher) verify(stored, s string) (bool, bool, error) { return stored == "$plain$"+s, false, nil }
func (h *secretHasher) dummyVerify(s string)                         {}
func isGeneratedHash(s string) bool                                  { return false }
func isLegacyHash(s string) bool { return len(s) == 40 }
