// Package archcheck holds the test that keeps docs/architecture.md's
// package table true: every package of the module has a row, and its
// code imports only the project packages and third-party modules its
// row allows. It has no code of its own.
package archcheck
