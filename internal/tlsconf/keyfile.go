package tlsconf

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/secret"
)

// Encrypted private keys. A key file may hold a PKCS#8 "ENCRYPTED PRIVATE KEY" (PBES2:
// PBKDF2 with HMAC-SHA1/224/256/384/512, then AES-128/192/256-CBC), as `openssl genpkey
// -aes256` and `openssl pkcs8 -topk8 -v2 aes-256-cbc` write it, or a legacy PEM block with
// "Proc-Type: 4,ENCRYPTED" headers (`openssl rsa -aes256 -traditional`). The password is
// never written in the configuration: keyfile_password names a file ("file:/path", the
// first line is the password) or an environment variable ("env:NAME"), read again at
// every load so that a rotated key and password are picked up together.

// maxPBKDF2Iterations bounds the work a key file can ask for (OpenSSL writes 2048 by
// default; ten million HMAC rounds take seconds).
const maxPBKDF2Iterations = 10_000_000

// errWrongPassword is returned when decryption yields no valid key.
var errWrongPassword = errors.New("cannot decrypt the private key: wrong keyfile_password or a corrupt file")

// checkPasswordRef checks the form of a keyfile_password value without reading anything.
// A RAMPART_ variable is refused: `rampart serve` takes those as configuration overrides.
func checkPasswordRef(ref string) error {
	if err := secret.Check(ref, "password"); err != nil {
		return err
	}
	if name, ok := strings.CutPrefix(ref, "env:"); ok && strings.HasPrefix(strings.ToUpper(name), "RAMPART_") {
		return fmt.Errorf("env:%s: RAMPART_ variables are configuration overrides (the loader refuses one that names no key); choose another name", name)
	}
	return nil
}

// resolvePassword reads the password a keyfile_password reference names: its first line.
// Errors say where it looked, never what it found.
func resolvePassword(ref string) (string, error) {
	if err := checkPasswordRef(ref); err != nil {
		return "", err
	}
	data, err := secret.Read(ref)
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return "", errors.New("keyfile_password: the first line is empty")
	}
	return string(line), nil
}

// decryptKeyPEM returns the private key of keyPEM as an unencrypted PEM block, decrypting
// it with the password passwordRef names when it is encrypted. A file without a private
// key block is returned unchanged, for tls.X509KeyPair to report.
func decryptKeyPEM(keyFile string, keyPEM []byte, passwordRef string) ([]byte, error) {
	block := firstKeyBlock(keyPEM)
	if block == nil {
		return keyPEM, nil
	}
	legacy := block.Headers["Proc-Type"] == "4,ENCRYPTED"
	if block.Type != "ENCRYPTED PRIVATE KEY" && !legacy {
		if passwordRef != "" {
			return nil, fmt.Errorf("keyfile %q: keyfile_password is set but the private key is not encrypted; remove keyfile_password or encrypt the key", keyFile)
		}
		return keyPEM, nil
	}
	if passwordRef == "" {
		return nil, fmt.Errorf("keyfile %q: the private key is encrypted; set keyfile_password (file:/path or env:NAME)", keyFile)
	}
	password, err := resolvePassword(passwordRef)
	if err != nil {
		return nil, fmt.Errorf("keyfile %q: keyfile_password: %w", keyFile, err)
	}
	var der []byte
	typ := "PRIVATE KEY"
	if legacy {
		der, err = decryptLegacyPEM(block, password)
		typ = block.Type
	} else {
		der, err = decryptPKCS8(block.Bytes, password)
	}
	if err != nil {
		return nil, fmt.Errorf("keyfile %q: %w", keyFile, err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	clear(der)
	return out, nil
}

// firstKeyBlock returns the first PEM block of data that holds a private key.
func firstKeyBlock(data []byte) *pem.Block {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil
		}
		if block.Type == "PRIVATE KEY" || strings.HasSuffix(block.Type, " PRIVATE KEY") {
			return block
		}
	}
}

// decryptLegacyPEM decrypts an OpenSSL "traditional" encrypted PEM block. The format's
// key derivation is one round of MD5 and cannot be made strong; PKCS#8 is preferred.
func decryptLegacyPEM(block *pem.Block, password string) ([]byte, error) {
	dek := block.Headers["DEK-Info"]
	alg, _, _ := strings.Cut(dek, ",")
	switch alg {
	case "AES-128-CBC", "AES-192-CBC", "AES-256-CBC", "DES-EDE3-CBC":
	default:
		return nil, fmt.Errorf("legacy encrypted key with DEK-Info %q: use AES-128/192/256-CBC or DES-EDE3-CBC, or better convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`", alg)
	}
	// The legacy format has no other implementation in the standard library; its
	// weaknesses (MD5 key derivation, padding oracle) are the format's, and here the
	// ciphertext comes from the operator's own file, not from a peer.
	//lint:ignore SA1019 the only decoder of OpenSSL's traditional encrypted PEM keys in the standard library
	der, err := x509.DecryptPEMBlock(block, []byte(password))
	if err != nil {
		return nil, errWrongPassword
	}
	// A wrong password passes the padding check once in about 256 tries: the key must parse.
	var perr error
	switch block.Type {
	case "RSA PRIVATE KEY":
		_, perr = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		_, perr = x509.ParseECPrivateKey(der)
	default:
		_, perr = x509.ParsePKCS8PrivateKey(der)
	}
	if perr != nil {
		clear(der)
		return nil, errWrongPassword
	}
	return der, nil
}

// ASN.1 of PKCS#8 EncryptedPrivateKeyInfo (RFC 5958) and PBES2 (RFC 8018).
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte // the "specified" choice; "otherSource" is not supported
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
)

// pbkdf2PRF returns the hash of an HMAC PRF by OID (1.2.840.113549.2.x), and its name.
func pbkdf2PRF(oid asn1.ObjectIdentifier) (func() hash.Hash, string, bool) {
	prefix := asn1.ObjectIdentifier{1, 2, 840, 113549, 2}
	if len(oid) == 0 { // absent: the default, hmacWithSHA1
		return sha1.New, "hmacWithSHA1", true
	}
	if len(oid) != len(prefix)+1 || !oid[:len(prefix)].Equal(prefix) {
		return nil, "", false
	}
	switch oid[len(prefix)] {
	case 7:
		return sha1.New, "hmacWithSHA1", true
	case 8:
		return sha256.New224, "hmacWithSHA224", true
	case 9:
		return sha256.New, "hmacWithSHA256", true
	case 10:
		return sha512.New384, "hmacWithSHA384", true
	case 11:
		return sha512.New, "hmacWithSHA512", true
	}
	return nil, "", false
}

// aesCBCKeySize returns the key size of an AES-CBC encryption scheme by OID
// (2.16.840.1.101.3.4.1.{2,22,42}).
func aesCBCKeySize(oid asn1.ObjectIdentifier) (int, bool) {
	prefix := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1}
	if len(oid) != len(prefix)+1 || !oid[:len(prefix)].Equal(prefix) {
		return 0, false
	}
	switch oid[len(prefix)] {
	case 2:
		return 16, true
	case 22:
		return 24, true
	case 42:
		return 32, true
	}
	return 0, false
}

// unmarshalAll parses exactly one DER value from data into v.
func unmarshalAll(data []byte, v any) error {
	rest, err := asn1.Unmarshal(data, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data")
	}
	return nil
}

// decryptPKCS8 decrypts a DER EncryptedPrivateKeyInfo with PBES2 and returns the DER
// PKCS#8 PrivateKeyInfo inside, after checking that it parses.
func decryptPKCS8(der []byte, password string) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if err := unmarshalAll(der, &info); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: %w", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted PKCS#8 key uses scheme %s; only PBES2 (PBKDF2 with AES-CBC) is supported: re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if err := unmarshalAll(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: PBES2 parameters: %w", err)
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("encrypted PKCS#8 key uses key derivation %s; only PBKDF2 is supported", params.KeyDerivationFunc.Algorithm)
	}
	var kdf pbkdf2Params
	if err := unmarshalAll(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: PBKDF2 parameters (only a specified salt is supported): %w", err)
	}
	prf, prfName, ok := pbkdf2PRF(kdf.PRF.Algorithm)
	if !ok {
		return nil, fmt.Errorf("encrypted PKCS#8 key uses PBKDF2 PRF %s; supported: hmacWithSHA1, SHA224, SHA256, SHA384, SHA512", kdf.PRF.Algorithm)
	}
	keySize, ok := aesCBCKeySize(params.EncryptionScheme.Algorithm)
	if !ok {
		return nil, fmt.Errorf("encrypted PKCS#8 key uses cipher %s; supported: AES-128-CBC, AES-192-CBC, AES-256-CBC", params.EncryptionScheme.Algorithm)
	}
	if kdf.IterationCount < 1 || kdf.IterationCount > maxPBKDF2Iterations {
		return nil, fmt.Errorf("encrypted PKCS#8 key: PBKDF2 iteration count %d is outside 1..%d", kdf.IterationCount, maxPBKDF2Iterations)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != keySize {
		return nil, fmt.Errorf("encrypted PKCS#8 key: PBKDF2 key length %d does not fit AES-%d", kdf.KeyLength, keySize*8)
	}
	if len(kdf.Salt) == 0 {
		return nil, errors.New("encrypted PKCS#8 key: empty PBKDF2 salt")
	}
	var iv []byte
	if err := unmarshalAll(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, errors.New("encrypted PKCS#8 key: the AES-CBC parameters are not a 16-byte IV")
	}
	data := info.EncryptedData
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("encrypted PKCS#8 key: %d bytes of ciphertext is not a whole number of AES blocks", len(data))
	}
	key, err := pbkdf2.Key(prf, password, kdf.Salt, kdf.IterationCount, keySize)
	if err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: PBKDF2 (%s): %w", prfName, err)
	}
	block, err := aes.NewCipher(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: %w", err)
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, data)
	n, ok := pkcs7PaddingLen(plain, aes.BlockSize)
	if !ok {
		clear(plain)
		return nil, errWrongPassword
	}
	plain = plain[:len(plain)-n]
	// A wrong password leaves valid-looking padding about once in 256 tries: the
	// plaintext must also be a private key.
	if _, err := x509.ParsePKCS8PrivateKey(plain); err != nil {
		clear(plain)
		return nil, errWrongPassword
	}
	return plain, nil
}

// pkcs7PaddingLen returns the length of the PKCS#7 padding at the end of data, checking
// every padding byte, and false when the padding is not exactly right.
func pkcs7PaddingLen(data []byte, blockSize int) (int, bool) {
	if len(data) == 0 || len(data)%blockSize != 0 {
		return 0, false
	}
	n := int(data[len(data)-1])
	if n < 1 || n > blockSize {
		return 0, false
	}
	for _, b := range data[len(data)-n:] {
		if int(b) != n {
			return 0, false
		}
	}
	return n, true
}
