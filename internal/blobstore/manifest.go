package blobstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// ManifestRecord is a manifest as the store keeps it: the storage
// contract's record. The store checks only that Body hashes to Digest and
// that the metadata is well formed.
type ManifestRecord = storage.ManifestRecord

// revisionFile is root/repos/<name>/_manifests/revisions/<alg>/<hex>.
// Body is the manifest itself (also stored as blob <digest>, which the
// blob endpoint and GC read): a pull by digest is one read on object
// storage, by tag two. Records written before it was added lack it; the
// blob is read then.
type revisionFile struct {
	MediaType    string            `json:"mediaType"`
	Body         []byte            `json:"body,omitempty"`
	Subject      oci.Digest        `json:"subject,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// maxRevisionFile bounds what is read back from a revision record, which
// holds the body as base64 (4/3 of at most MaxManifestSize) and the
// annotations (at most MaxManifestSize): 3×MaxManifestSize bounds both.
const maxRevisionFile = 3 * oci.MaxManifestSize

// PutManifest stores m.Body as a blob (verified against m.Digest), records
// the revision in repo, records a referrer entry under *m.Subject when set
// (whether or not the subject exists), and, when tag is not empty, points
// the tag at it. Each file is replaced atomically, in that order, so a
// crash leaves at worst an untagged revision.
func (s *Store) PutManifest(repo string, m ManifestRecord, tag string) error {
	if err := s.checkRepo(repo); err != nil {
		return fmt.Errorf("put manifest: %w", err)
	}
	d, err := checkDigest(m.Digest)
	if err != nil {
		return fmt.Errorf("put manifest: %w", err)
	}
	if tag != "" {
		if err := checkTag(tag); err != nil {
			return fmt.Errorf("put manifest %s: %w", d, err)
		}
	}
	if !oci.ValidMediaType(m.MediaType) {
		return fmt.Errorf("put manifest %s: %w: media type %.80q", d, ErrManifestInvalid, m.MediaType)
	}
	if m.ArtifactType != "" && !oci.ValidMediaType(m.ArtifactType) {
		return fmt.Errorf("put manifest %s: %w: artifact type %.80q", d, ErrManifestInvalid, m.ArtifactType)
	}
	if len(m.Body) > oci.MaxManifestSize {
		return fmt.Errorf("put manifest %s: %w: %d bytes, the limit is %d", d, ErrTooLarge, len(m.Body), oci.MaxManifestSize)
	}
	if d.Algorithm().FromBytes(m.Body) != d {
		return fmt.Errorf("put manifest %s: %w", d, ErrDigestMismatch)
	}
	rev := revisionFile{MediaType: m.MediaType, Body: m.Body, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	var subject oci.Digest
	if m.Subject != nil {
		if subject, err = checkDigest(*m.Subject); err != nil {
			return fmt.Errorf("put manifest %s: subject: %w", d, err)
		}
		rev.Subject = subject
	}
	revBytes, err := json.Marshal(rev)
	if err != nil {
		return fmt.Errorf("put manifest %s: %w", d, err)
	}
	if len(revBytes) > maxRevisionFile {
		return fmt.Errorf("put manifest %s: %w: annotations too large", d, ErrManifestInvalid)
	}

	s.refRLock()
	defer s.refRUnlock()
	unlock := s.lockRepo(repo)
	defer unlock()
	if err := s.putBlobBytesLocked(d, m.Body); err != nil {
		return fmt.Errorf("put manifest %s: store body: %w", d, err)
	}
	if cur, err := s.readSmall(revisionName(repo, d), maxRevisionFile); err != nil || !bytes.Equal(cur, revBytes) {
		if err := s.putObj(revisionName(repo, d), revBytes); err != nil {
			return fmt.Errorf("put manifest %s: record revision in %s: %w", d, repo, err)
		}
	}
	if subject != "" {
		desc := oci.Descriptor{
			MediaType:    m.MediaType,
			Digest:       d,
			Size:         int64(len(m.Body)),
			ArtifactType: m.ArtifactType,
			Annotations:  m.Annotations,
		}
		b, err := json.Marshal(desc)
		if err != nil {
			return fmt.Errorf("put manifest %s: %w", d, err)
		}
		if err := s.putObj(referrerName(repo, subject, d), b); err != nil {
			return fmt.Errorf("put manifest %s: record referrer of %s: %w", d, subject, err)
		}
	}
	if tag != "" {
		if err := s.putObj(tagName(repo, tag), []byte(d)); err != nil {
			return fmt.Errorf("put manifest %s: tag %s:%s: %w", d, repo, tag, err)
		}
	}
	s.bumpGen()
	return nil
}

// resolve turns a reference (tag or digest) into a digest.
func (s *Store) resolve(repo, ref string) (oci.Digest, error) {
	r, err := oci.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if r.IsDigest() {
		return r.Digest, nil
	}
	b, err := s.readSmall(tagName(repo, r.Tag), 256)
	if err != nil {
		if isNotExist(err) {
			return "", s.unknown(repo, fmt.Errorf("tag %s: %w", r.Tag, ErrTagUnknown))
		}
		return "", err
	}
	d, err := oci.ParseDigest(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("tag %s: stored digest: %w", r.Tag, err)
	}
	return d, nil
}

// unknown returns ErrNameUnknown when repo holds nothing at all, else err.
func (s *Store) unknown(repo string, err error) error {
	if ok, xerr := s.repoExists(repo); xerr == nil && !ok {
		return fmt.Errorf("%s: %w", repo, ErrNameUnknown)
	}
	return err
}

func (s *Store) readRevision(repo string, d oci.Digest) (revisionFile, error) {
	var rev revisionFile
	b, err := s.readSmall(revisionName(repo, d), maxRevisionFile)
	if err != nil {
		if isNotExist(err) {
			return rev, s.unknown(repo, fmt.Errorf("%s: %w", d, ErrManifestUnknown))
		}
		return rev, err
	}
	if err := json.Unmarshal(b, &rev); err != nil {
		return rev, fmt.Errorf("revision %s: %w", d, err)
	}
	return rev, nil
}

// GetManifest returns the manifest ref (a tag or a digest) of repo. A
// missing manifest is ErrManifestUnknown (ErrTagUnknown for a tag), or
// ErrNameUnknown when the repository holds nothing at all. The body is
// re-verified against its digest before it is returned.
func (s *Store) GetManifest(repo string, ref string) (ManifestRecord, error) {
	if err := s.checkRepo(repo); err != nil {
		return ManifestRecord{}, fmt.Errorf("get manifest: %w", err)
	}
	d, err := s.resolve(repo, ref)
	if err != nil {
		return ManifestRecord{}, fmt.Errorf("get manifest %s:%.80s: %w", repo, ref, err)
	}
	rev, err := s.readRevision(repo, d)
	if err != nil {
		return ManifestRecord{}, fmt.Errorf("get manifest %s:%.80s: %w", repo, ref, err)
	}
	body, err := rev.Body, error(nil)
	if body == nil {
		body, err = s.readSmall(blobName(d), oci.MaxManifestSize+1)
	}
	if err != nil {
		if isNotExist(err) {
			s.log.Warn("manifest revision without its blob", keyRepo, repo, keyDigest, d)
			return ManifestRecord{}, fmt.Errorf("get manifest %s@%s: %w (blob missing)", repo, d, ErrManifestUnknown)
		}
		return ManifestRecord{}, fmt.Errorf("get manifest %s@%s: %w", repo, d, err)
	}
	if d.Algorithm().FromBytes(body) != d {
		s.log.Error("stored manifest does not match its digest", keyRepo, repo, keyDigest, d)
		return ManifestRecord{}, fmt.Errorf("get manifest %s@%s: stored body is corrupt", repo, d)
	}
	rec := ManifestRecord{
		Digest:       d,
		MediaType:    rev.MediaType,
		Body:         body,
		ArtifactType: rev.ArtifactType,
		Annotations:  rev.Annotations,
	}
	if rev.Subject != "" {
		subj := rev.Subject
		rec.Subject = &subj
	}
	return rec, nil
}

// StatManifest returns digest, media type and size of manifest ref without
// reading its body. Errors as GetManifest.
func (s *Store) StatManifest(repo string, ref string) (oci.Digest, string, int64, error) {
	if err := s.checkRepo(repo); err != nil {
		return "", "", 0, fmt.Errorf("stat manifest: %w", err)
	}
	d, err := s.resolve(repo, ref)
	if err != nil {
		return "", "", 0, fmt.Errorf("stat manifest %s:%.80s: %w", repo, ref, err)
	}
	rev, err := s.readRevision(repo, d)
	if err != nil {
		return "", "", 0, fmt.Errorf("stat manifest %s:%.80s: %w", repo, ref, err)
	}
	if rev.Body != nil {
		return d, rev.MediaType, int64(len(rev.Body)), nil
	}
	info, err := s.statObj(blobName(d))
	if err != nil {
		if isNotExist(err) {
			return "", "", 0, fmt.Errorf("stat manifest %s@%s: %w (blob missing)", repo, d, ErrManifestUnknown)
		}
		return "", "", 0, fmt.Errorf("stat manifest %s@%s: %w", repo, d, err)
	}
	return d, rev.MediaType, info.Size, nil
}

// DeleteManifest removes revision d from repo, every tag of repo pointing at
// it and its referrer entry. The body blob stays until GC finds it unused.
// ErrManifestUnknown if repo has no such revision.
func (s *Store) DeleteManifest(repo string, d oci.Digest) error {
	if err := s.checkRepo(repo); err != nil {
		return fmt.Errorf("delete manifest: %w", err)
	}
	d, err := checkDigest(d)
	if err != nil {
		return fmt.Errorf("delete manifest: %w", err)
	}
	s.refRLock()
	defer s.refRUnlock()
	unlock := s.lockRepo(repo)
	defer unlock()
	var rev revisionFile
	b, err := s.readSmall(revisionName(repo, d), maxRevisionFile)
	if err != nil {
		if isNotExist(err) {
			return fmt.Errorf("delete manifest %s@%s: %w", repo, d, ErrManifestUnknown)
		}
		return fmt.Errorf("delete manifest %s@%s: %w", repo, d, err)
	}
	if err := json.Unmarshal(b, &rev); err != nil {
		s.log.Warn("unreadable revision record; deleting anyway", keyRepo, repo, keyDigest, d, keyErr, err)
	}
	// Tags and referrer entry first, the revision last: a crash part way
	// leaves the revision, and deleting again finishes the job.
	tags, err := s.tagsPointingAt(repo, d)
	if err != nil {
		return fmt.Errorf("delete manifest %s@%s: %w", repo, d, err)
	}
	for _, t := range tags {
		if err := s.deleteObj(tagName(repo, t)); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete manifest %s@%s: untag %s: %w", repo, d, t, err)
		}
	}
	if rev.Subject != "" {
		if subj, err := checkDigest(rev.Subject); err == nil {
			if err := s.deleteObj(referrerName(repo, subj, d)); err != nil && !isNotExist(err) {
				return fmt.Errorf("delete manifest %s@%s: referrer entry: %w", repo, d, err)
			}
		}
	}
	s.forgetLink(repo, d) // a revision serves as a link too (BlobLinked)
	err = s.deleteObj(revisionName(repo, d))
	s.bumpGen() // tags and maybe the repository are gone from the lists
	if err != nil {
		return fmt.Errorf("delete manifest %s@%s: %w", repo, d, err)
	}
	return nil
}

// tagsPointingAt lists the tags of repo whose current target is d.
func (s *Store) tagsPointingAt(repo string, d oci.Digest) ([]string, error) {
	tags, err := s.tagNames(repo)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range tags {
		b, err := s.readSmall(tagName(repo, t), 256)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return nil, err
		}
		if oci.Digest(strings.TrimSpace(string(b))) == d {
			out = append(out, t)
		}
	}
	return out, nil
}

// tagNames lists the valid tag objects of repo (one listing), unsorted.
func (s *Store) tagNames(repo string) ([]string, error) {
	if s.fsd != nil {
		return s.fsTagNames(repo)
	}
	prefix := tagsName(repo)
	var tags []string
	err := s.list(prefix, func(o ObjectInfo) error {
		if t, ok := strings.CutPrefix(o.Name, prefix+"/"); ok && oci.ValidTag(t) {
			tags = append(tags, t)
		}
		return nil
	})
	return tags, err
}

// DeleteTag removes tag from repo; the manifest stays. ErrTagUnknown (which
// matches ErrManifestUnknown) if there is no such tag.
func (s *Store) DeleteTag(repo, tag string) error {
	if err := s.checkRepo(repo); err != nil {
		return fmt.Errorf("delete tag: %w", err)
	}
	if err := checkTag(tag); err != nil {
		return fmt.Errorf("delete tag: %w", err)
	}
	s.refRLock()
	defer s.refRUnlock()
	unlock := s.lockRepo(repo)
	defer unlock()
	if err := s.deleteObj(tagName(repo, tag)); err != nil {
		if isNotExist(err) {
			return fmt.Errorf("delete tag %s:%s: %w", repo, tag, ErrTagUnknown)
		}
		return fmt.Errorf("delete tag %s:%s: %w", repo, tag, err)
	}
	s.bumpGen()
	return nil
}

// Tags lists the tags of repo in byte order. ErrNameUnknown if the
// repository holds nothing at all; an existing repository without tags
// gives an empty list.
func (s *Store) Tags(repo string) ([]string, error) {
	if err := s.checkRepo(repo); err != nil {
		return nil, fmt.Errorf("list tags: %w", err)
	}
	tags, err := s.sortedTags(repo)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	if len(tags) == 0 {
		if ok, err := s.repoExists(repo); err != nil {
			return nil, fmt.Errorf("list tags of %s: %w", repo, err)
		} else if !ok {
			return nil, fmt.Errorf("list tags of %s: %w", repo, ErrNameUnknown)
		}
		return []string{}, nil
	}
	return tags, nil
}

// Referrers returns the descriptors of the manifests in repo whose subject
// is subject, sorted by digest; empty (not an error) for an existing
// repository. ErrNameUnknown if the repository holds nothing at all.
func (s *Store) Referrers(repo string, subject oci.Digest) ([]oci.Descriptor, error) {
	if err := s.checkRepo(repo); err != nil {
		return nil, fmt.Errorf("list referrers: %w", err)
	}
	subject, err := checkDigest(subject)
	if err != nil {
		return nil, fmt.Errorf("list referrers: %w", err)
	}
	prefix := referrersName(repo, subject)
	var names []string
	if err := s.list(prefix, func(o ObjectInfo) error {
		names = append(names, o.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list referrers of %s in %s: %w", subject, repo, err)
	}
	out := []oci.Descriptor{}
	for _, n := range names {
		name, ok := strings.CutSuffix(strings.TrimPrefix(n, prefix+"/"), ".json")
		if !ok {
			continue
		}
		alg, hexPart, _ := strings.Cut(name, "-")
		d, err := oci.ParseDigest(alg + ":" + hexPart)
		if err != nil {
			continue
		}
		b, err := s.readSmall(n, maxRevisionFile)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("list referrers of %s in %s: %w", subject, repo, err)
		}
		var desc oci.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil || desc.Digest != d {
			s.log.Warn("unreadable referrer entry skipped", keyRepo, repo, keyDigest, d)
			continue
		}
		// An entry whose revision is gone (crash during a delete) is stale.
		if ok, err := s.exists(revisionName(repo, d)); err != nil || !ok {
			continue
		}
		out = append(out, desc)
	}
	if len(out) == 0 {
		if ok, err := s.repoExists(repo); err == nil && !ok {
			return nil, fmt.Errorf("list referrers of %s: %w", repo, ErrNameUnknown)
		}
	}
	slices.SortFunc(out, func(a, b oci.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return out, nil
}
