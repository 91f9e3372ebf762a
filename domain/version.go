package domain

import (
	"encoding/base64"
	"encoding/binary"
)

// Version is a message row's version; it changes with every write. On the wire
// it is the opaque `ts` byte string (eight big-endian bytes, base64 in JSON and XML).
type Version int64

// Bytes returns the wire form of v.
func (v Version) Bytes() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(v))
	return b
}

// String returns v as base64, the form used in JSON, XML and ETags.
func (v Version) String() string { return base64.StdEncoding.EncodeToString(v.Bytes()) }

// VersionFromBytes decodes the wire form; anything but eight bytes is invalid.
func VersionFromBytes(b []byte) (Version, error) {
	if len(b) != 8 {
		return 0, FieldError("ts", "must be the 8-byte version returned by the gateway")
	}
	return Version(binary.BigEndian.Uint64(b)), nil
}

// ParseVersion decodes the base64 form, as found in an If-Match header.
func ParseVersion(s string) (Version, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return 0, FieldError("ts", "is not valid base64")
	}
	return VersionFromBytes(b)
}
