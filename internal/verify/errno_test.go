package verify

import "syscall"

var (
	errnoRefused     error = syscall.ECONNREFUSED
	errnoPerm        error = syscall.EPERM
	errnoAccess      error = syscall.EACCES
	errnoNetUnreach  error = syscall.ENETUNREACH
	errnoHostUnreach error = syscall.EHOSTUNREACH
)
