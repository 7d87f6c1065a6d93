// Package verify is the escape-attempt battery: real probes over every
// channel a node could leak through, each classified as blocked or leaked
// from what the far side answered.
package verify
