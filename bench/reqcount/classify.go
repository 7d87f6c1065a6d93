package main

import (
	"net/http"
	"strings"
)

// classify names the coarse storage operation of an Azure Blob or S3
// request, from its method, query and headers alone:
//
//	get        read of an object's body (GET Blob / GetObject), whole
//	get-range  the same with a Range header (a part of the body)
//	head       properties of an object, bucket or container (HEAD)
//	put        write of a whole object (Put Blob / PutObject)
//	put-part   write of a part (Put Block, Append Block, UploadPart)
//	commit     start or end of a multi-part write (Put Block List,
//	           CreateMultipartUpload, CompleteMultipartUpload)
//	copy       server-side copy (Copy Blob, CopyObject, UploadPartCopy)
//	list       listing (List Blobs, ListObjects, ListParts, ListMultipartUploads)
//	delete     delete of an object or of several, abort of a multi-part write
//	metadata   get or set metadata, properties or tags
//	container  create or delete a container or bucket
//	other      anything else
func classify(r *http.Request) string {
	q := r.URL.Query()
	if r.Header.Get("x-ms-version") != "" || r.Header.Get("x-ms-date") != "" {
		return classifyAzure(r, q.Get("comp"), q.Get("restype"))
	}
	return classifyS3(r, q)
}

func classifyAzure(r *http.Request, comp, restype string) string {
	if restype == "container" {
		switch {
		case comp == "list":
			return "list"
		case comp != "":
			return "metadata"
		case r.Method == http.MethodPut || r.Method == http.MethodDelete:
			return "container"
		default:
			return "head" // Get Container Properties
		}
	}
	switch comp {
	case "":
	case "list":
		return "list"
	case "block", "appendblock", "page":
		return "put-part"
	case "blocklist":
		if r.Method == http.MethodPut {
			return "commit"
		}
		return "list"
	case "copy":
		return "copy"
	default: // metadata, properties, tags, lease, …
		return "metadata"
	}
	switch r.Method {
	case http.MethodGet:
		if r.Header.Get("x-ms-range") != "" || r.Header.Get("Range") != "" {
			return "get-range"
		}
		return "get"
	case http.MethodHead:
		return "head"
	case http.MethodPut:
		if r.Header.Get("x-ms-copy-source") != "" {
			return "copy"
		}
		return "put"
	case http.MethodDelete:
		return "delete"
	}
	return "other"
}

func classifyS3(r *http.Request, q map[string][]string) string {
	has := func(k string) bool { _, ok := q[k]; return ok }
	// Path style: /BUCKET or /BUCKET/KEY…
	key := strings.Contains(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch r.Method {
	case http.MethodGet:
		switch {
		case has("uploadId"), has("uploads"), has("list-type"), !key:
			return "list"
		case has("tagging"), has("acl"), has("attributes"):
			return "metadata"
		case r.Header.Get("Range") != "":
			return "get-range"
		}
		return "get"
	case http.MethodHead:
		return "head"
	case http.MethodPut:
		switch {
		case !key:
			return "container"
		case r.Header.Get("x-amz-copy-source") != "":
			return "copy"
		case has("partNumber"):
			return "put-part"
		case has("tagging"), has("acl"):
			return "metadata"
		}
		return "put"
	case http.MethodPost:
		switch {
		case has("uploads"), has("uploadId"):
			return "commit"
		case has("delete"):
			return "delete"
		}
		return "other"
	case http.MethodDelete:
		if !key {
			return "container"
		}
		return "delete"
	}
	return "other"
}
