package record

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config reaches an S3-compatible bucket.
type S3Config struct {
	// Endpoint is host[:port] of the S3 API (e.g. s3.eu-west-1.amazonaws.com,
	// 127.0.0.1:8333).
	Endpoint string
	// Insecure speaks plain HTTP instead of HTTPS (a store on loopback).
	Insecure bool
	Bucket   string
	// Prefix goes before every name, without a trailing slash ("" for
	// none).
	Prefix    string
	Region    string
	AccessKey string
	SecretKey string
}

// ParseStoreURL splits s3://bucket/prefix into the bucket and prefix.
func ParseStoreURL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("record: store %q: want s3://bucket/prefix", s)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// S3Store keeps recordings in an S3-compatible bucket (AWS S3, MinIO,
// SeaweedFS, Ceph RGW…) through minio-go.
type S3Store struct {
	cli    *minio.Client
	tr     *http.Transport
	bucket string
	prefix string // "" or ending in /
}

var _ Store = (*S3Store)(nil)

// NewS3Store connects lazily: the first request reaches the endpoint.
func NewS3Store(cfg S3Config) (*S3Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("record: S3 store needs an endpoint and a bucket")
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		creds = credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	}
	tr, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("record: S3 store: http.DefaultTransport is not an *http.Transport")
	}
	tr = tr.Clone() // its own connections, closed by Close
	cli, err := minio.New(cfg.Endpoint, &minio.Options{Creds: creds, Secure: !cfg.Insecure, Region: cfg.Region, Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("record: S3 store: %w", err)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &S3Store{cli: cli, tr: tr, bucket: cfg.Bucket, prefix: prefix}, nil
}

// Close closes the store's idle connections.
func (s *S3Store) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

// Put implements Store. It uploads in one PUT with Content-MD5, so the
// store itself refuses a body damaged on the way, and the file's SHA-256
// as metadata (x-amz-meta-sha256). The copy is then verified: the size
// and ETag the store reports for the object (a HEAD after the PUT) must
// be the file's size and MD5, the ETag of a single-PUT object without
// KMS encryption; where the ETag is something else (KMS), the object is
// read back and its SHA-256 compared instead.
func (s *S3Store) Put(ctx context.Context, name, local string, size int64, sum string) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	md5hex := hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	key := s.prefix + name
	_, err = s.cli.PutObject(ctx, s.bucket, key, f, size, minio.PutObjectOptions{
		ContentType:      contentType(name),
		UserMetadata:     map[string]string{"sha256": sum},
		SendContentMd5:   true,
		DisableMultipart: true, // one ETag that is the MD5; segments are far below 5 GiB
	})
	if err != nil {
		return fmt.Errorf("record: S3 put %s: %w", key, err)
	}
	st, err := s.cli.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("record: S3 stat %s: %w", key, err)
	}
	if st.Size != size {
		return fmt.Errorf("record: S3 %s: %w: %d bytes stored, %d sent", key, errBadCopy, st.Size, size)
	}
	if strings.Trim(st.ETag, `"`) == md5hex {
		return nil
	}
	got, err := s.sha256(ctx, key)
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("record: S3 %s: %w: SHA-256 %s read back, %s sent", key, errBadCopy, got, sum)
	}
	return nil
}

func (s *S3Store) sha256(ctx context.Context, key string) (string, error) {
	obj, err := s.cli.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return "", fmt.Errorf("record: S3 get %s: %w", key, err)
	}
	defer obj.Close()
	h := sha256.New()
	if _, err := io.Copy(h, obj); err != nil {
		return "", fmt.Errorf("record: S3 get %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Get implements Store.
func (s *S3Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	key := s.prefix + name
	obj, err := s.cli.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("record: S3 get %s: %w", key, err)
	}
	// GetObject sends nothing until read: Stat makes a missing object an
	// error now.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, fmt.Errorf("record: S3 get %s: %w", key, os.ErrNotExist)
		}
		return nil, fmt.Errorf("record: S3 get %s: %w", key, err)
	}
	return obj, nil
}

// Delete implements Store.
func (s *S3Store) Delete(ctx context.Context, name string) error {
	key := s.prefix + name
	if err := s.cli.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil
		}
		return fmt.Errorf("record: S3 delete %s: %w", key, err)
	}
	return nil
}

// List implements Store.
func (s *S3Store) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for obj := range s.cli.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("record: S3 list %s: %w", s.prefix+prefix, obj.Err)
		}
		out = append(out, strings.TrimPrefix(obj.Key, s.prefix))
	}
	return out, nil
}

// contentType is a recording file's media type by its name.
func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".webm"):
		return "video/webm"
	case strings.HasSuffix(name, ".mp4"):
		return "video/mp4"
	case strings.HasSuffix(name, ".json"):
		return "application/json"
	}
	return "application/octet-stream"
}
