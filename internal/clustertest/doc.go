// Package clustertest holds the tests of several OpenConsole servers on one PostgreSQL database:
// seat limits, visibility of sessions and revocations, timestamps under clock skew, and a database
// restart under load. It has no code of its own.
package clustertest
