# Generates openapi.json, the OpenAPI 3.1 document of the operator API: go generate ./admin
# (openapi_test.go checks the document against the OpenAPI 3.1 schema and every answer of the
# admin tests against the document, so edit this file with the code and regenerate).
import json
S = lambda name: {"$ref": "#/components/schemas/" + name}
def nullable(t, **kw):
    d = {"type": [t, "null"]}; d.update(kw); return d
time = {"type": ["string", "null"], "format": "date-time", "description": "RFC 3339 UTC with milliseconds, or null"}
time_req = {"type": "string", "format": "date-time"}
def obj(props, required=None, extra=False, desc=None):
    d = {"type": "object", "properties": props, "required": required if required is not None else list(props.keys()), "additionalProperties": extra}
    if desc: d["description"] = desc
    return d
def page(item):
    return obj({"items": {"type": "array", "items": S(item)}, "nextCursor": {"type": ["string", "null"]}})

schemas = {
 "Problem": obj({"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}, "code": {"type": "string"}},
                required=["type", "title", "status", "code"], desc="RFC 9457 problem details with a stable code"),
 "Seats": obj({"total": {"type": "integer", "minimum": 1}, "taken": {"type": "integer", "minimum": 0}}),
 "License": obj({
    "id": {"type": "integer"}, "key": {"type": "string"}, "kind": {"enum": ["key", "serial"]},
    "status": {"enum": ["active", "suspended", "expired", "revoked"]}, "owner": {"type": ["string", "null"]},
    "seats": S("Seats"), "expiresAt": time, "suspendedAt": time, "revokedAt": time, "note": {"type": "string"},
    "metadata": {"type": "object"}, "createdAt": time_req, "updatedAt": time_req, "version": {"type": "integer", "minimum": 1},
    "warning": {"type": "string"}},
    required=["id", "key", "kind", "status", "owner", "seats", "expiresAt", "suspendedAt", "revokedAt", "note", "metadata", "createdAt", "updatedAt", "version"]),
 "LicenseCreate": obj({"key": {"type": "string"}, "owner": {"type": ["string", "null"]}, "seats": {"type": "integer", "minimum": 1},
    "expiresAt": time, "note": {"type": "string"}, "metadata": {"type": ["object", "null"]}}, required=["seats"]),
 "LicensePatch": obj({"seats": {"type": "integer", "minimum": 1}, "expiresAt": time, "owner": {"type": ["string", "null"]},
    "note": {"type": "string"}, "metadata": {"type": ["object", "null"]}}, required=[]),
 "Session": obj({"id": {"type": "string", "format": "uuid"}, "license": {"type": "string"}, "timestamp": {"type": "integer"},
    "live": {"type": "boolean"}, "createdAt": time_req, "lastSeenAt": time_req, "revokedAt": time, "endedAt": time, "activatedFrom": {"type": "string"},
    "expiresAt": {**time, "description": "the hard expiry of an offline certificate's session (its not-after); null for online sessions"}}),
 "User": obj({"id": {"type": "integer"}, "username": {"type": "string"}, "email": {"type": "string"}, "displayName": {"type": "string"},
    "vendor": {"type": "boolean"}, "whitelabeled": {"type": "boolean"}, "disabled": {"type": "boolean"},
    "role": {"enum": ["admin", "operator", "reader", None]}, "createdAt": time_req, "updatedAt": time_req, "version": {"type": "integer"}}),
 "UserCreate": obj({"username": {"type": "string"}, "password": {"type": "string"}, "email": {"type": "string"}, "displayName": {"type": "string"},
    "vendor": {"type": "boolean"}, "whitelabeled": {"type": "boolean"}, "role": {"enum": ["admin", "operator", "reader", None]}}, required=["username", "password"]),
 "UserPatch": obj({"password": {"type": "string"}, "email": {"type": "string"}, "displayName": {"type": "string"}, "vendor": {"type": "boolean"},
    "whitelabeled": {"type": "boolean"}, "disabled": {"type": "boolean"}, "role": {"enum": ["admin", "operator", "reader", None]}}, required=[]),
 "Manufacturer": obj({"name": {"type": "string"}, "id": {"type": "integer"}}),
 "Serial": obj({"serialNumber": {"type": "string"}, "model": {"type": "string"}, "manufacturer": S("Manufacturer"),
    "manufactureDate": {"type": "string", "format": "date"}, "status": {"enum": ["registered", "activated"]}, "createdAt": time_req}),
 "SerialCreate": obj({"serialNumber": {"type": "string"}, "model": {"type": "string"},
    "manufacturer": obj({"name": {"type": "string"}, "id": {"type": "integer"}}, required=["name"]), "manufactureDate": {"type": "string"}},
    required=["serialNumber", "model", "manufacturer", "manufactureDate"]),
 "Token": obj({"id": {"type": "string"}, "name": {"type": "string"}, "role": {"enum": ["admin", "operator", "reader"]},
    "token": {"type": "string", "description": "the secret: only in the answer that created the token"},
    "createdAt": time_req, "expiresAt": time, "revokedAt": time, "lastUsedAt": time},
    required=["id", "name", "role", "createdAt", "expiresAt", "revokedAt", "lastUsedAt"]),
 "TokenCreate": obj({"name": {"type": "string"}, "role": {"enum": ["admin", "operator", "reader"]}, "expiresAt": time}, required=["name", "role"]),
 "Stats": obj({"licenses": obj({k: {"type": "integer"} for k in ["active", "suspended", "expired", "revoked"]}),
    "liveSessions": {"type": "integer"}, "activations24h": {"type": "integer"}, "activations7d": {"type": "integer"},
    "activationsByDay": {"type": "array", "items": obj({"day": {"type": "string", "format": "date"}, "count": {"type": "integer"}})}}),
 "SeatCheck": obj({"ok": {"type": "boolean"}, "licenses": {"type": "integer"}, "heldSeats": {"type": "integer"},
    "mismatches": {"type": "array", "items": obj({"licenseId": {"type": "integer"}, "license": {"type": "string"}, "taken": {"type": "integer"}, "held": {"type": "integer"}})},
    "repaired": {"type": "boolean"}}),
 "Rotated": obj({"id": {"type": "string"}, "dropOld": {"type": "boolean"}}),
 "Manifest": obj({"app": {"type": "string"}, "version": {"type": "string"}, "schemaVersion": {"type": "string"}, "official": {"type": "boolean"},
    "createdAt": time_req, "replaced": {"type": "boolean"}, "document": {"type": "object"}}, required=["app", "version", "schemaVersion", "official", "createdAt"]),
 "Removed": obj({"app": {"type": "string"}, "version": {"type": "string"}, "schemaVersion": {"type": ["string", "null"]}, "removed": {"type": "integer"}}),
 "App": obj({"name": {"type": "string"}, "official": {"type": "boolean"}, "credentialsSet": {"type": "boolean"}, "createdAt": time_req, "updatedAt": time_req}),
 "Credentials": obj({"username": {"type": "string"}, "password": {"type": "string"}}),
 "TokenIssuance": obj({"id": {"type": "integer"}, "session": {"type": "string"}, "app": {"type": "string"}, "version": {"type": "string"},
    "credentials": {"type": "boolean"}, "issuedAt": time_req, "lastIssuedAt": time_req, "count": {"type": "integer", "minimum": 1}},
    desc="the download-token answers of one session for one app version and kind: the first, the latest and how many"),
 "Product": obj({"id": {"type": "integer"}, "name": {"type": "string"}, "storeId": {"type": "integer"}, "app": {"type": ["string", "null"]},
    "ratingCount": {"type": "integer"}, "averageRating": {"type": "number"}}),
 "Subscription": obj({"id": {"type": "integer"}, "user": {"type": "string"}, "productId": {"type": "integer"}, "status": {"type": "string"}, "createdAt": time_req}),
 "SubscriptionCreate": obj({"user": {"type": "string"}, "productId": {"type": "integer"}, "status": {"type": "string"}}, required=["user", "productId"]),
 "Actor": obj({"kind": {"enum": ["token", "socket", "cli", "web", "console", "system"]}, "name": {"type": "string"}, "addr": {"type": "string"}}),
 "AuditEntry": obj({"seq": {"type": "integer", "minimum": 0}, "at": time_req, "actor": S("Actor"), "action": {"type": "string"},
    "target": {"type": "string"}, "before": {"type": "object"}, "after": {"type": "object"},
    "leafHash": {"type": ["string", "null"], "description": "the hash of the entry's leaf stored in the tree when it was appended (base64)"}}),
 "AuditKey": obj({"origin": {"type": "string"}, "verifier": {"type": "string", "description": "the newest key's verifier key (name+hash+key), empty before a server first started"},
    "held": {"enum": ["database", "file", ""]}, "verifiers": {"type": "array", "items": {"type": "string"}, "description": "every key that signed checkpoints, oldest first"}}),
 "Checkpoint": obj({"size": {"type": "integer", "minimum": 1}, "rootHash": {"type": "string"}, "signedAt": time_req,
    "note": {"type": "string", "description": "the signed note: origin, size and root hash (base64) on three lines, a blank line, the signature line"}}),
 "Inclusion": obj({"seq": {"type": "integer", "minimum": 0}, "size": {"type": "integer", "minimum": 1}, "entry": S("AuditEntry"),
    "leaf": {"type": "string", "description": "the bytes the leaf hashes: the entry's canonical JSON"}, "leafHash": {"type": "string"},
    "rootHash": {"type": "string"}, "proof": {"type": "array", "items": {"type": "string"}, "description": "the RFC 6962 audit path, from the leaf up (base64)"},
    "checkpoint": {"type": ["string", "null"], "description": "the signed checkpoint of this size, when one was signed"}}),
 "Consistency": obj({"from": {"type": "integer", "minimum": 1}, "to": {"type": "integer", "minimum": 1}, "fromRootHash": {"type": "string"},
    "toRootHash": {"type": "string"}, "proof": {"type": "array", "items": {"type": "string"}, "description": "the RFC 6962 consistency proof (base64)"},
    "fromCheckpoint": {"type": ["string", "null"]}, "toCheckpoint": {"type": ["string", "null"]}}),
 "OfflineCertificate": obj({"id": {"type": "integer"}, "license": {"type": "string"},
    "deviceKey": {"type": "string", "description": "the device's Ed25519 public key (base64)"},
    "counter": {"type": "integer", "minimum": 1, "description": "increases with every certificate issued to the device key"},
    "nonce": {"type": "string", "description": "the request's nonce (hex)"}, "session": {"type": "string", "format": "uuid"},
    "status": {"enum": ["active", "expired", "deactivated"]}, "issuedAt": time_req, "notBefore": time_req, "notAfter": time_req, "deactivatedAt": time}),
 "OfflineIssue": obj({"request": {"type": "string", "description": "the device's offline request note"},
    "ttl": {"type": "string", "description": "the certificate's lifetime, such as 90d (the default) or 36h: 1h to 3650d, never past the license's expiry"}},
    required=["request"]),
 "OfflineIssued": obj({"certificate": {"type": "string", "description": "the signed certificate note, as the device installs it"},
    "replaced": {"type": "boolean", "description": "true when it replaced the device key's certificate on the same seat"}, "record": S("OfflineCertificate")}),
 "OfflineDeactivate": obj({"proof": {"type": "string", "description": "the device's signed deactivation note"}}),
 "OfflineDeactivated": obj({"freed": {"type": "boolean", "description": "false when the certificate had expired already (its seat was freed then)"},
    "record": S("OfflineCertificate")}),
 "OfflineKey": obj({"name": {"type": "string", "description": "the key's name: the certificates' issuer"},
    "verifier": {"type": "string", "description": "the verifier key devices pin (name+hash+key); empty before a server first started"},
    "held": {"enum": ["database", "file", ""]}, "verifiers": {"type": "array", "items": {"type": "string"}, "description": "every key that signed certificates, oldest first"}}),
}
for n in ["License", "Session", "User", "Serial", "Token", "Manifest", "TokenIssuance", "Product", "Subscription", "AuditEntry", "OfflineCertificate"]:
    schemas[n + "Page"] = page(n)

def errs(*codes):
    d = {}
    for c in codes:
        d[str(c)] = {"$ref": "#/components/responses/Problem"}
    return d
def ok(status, schema, desc="OK", headers=None):
    r = {"description": desc, "content": {"application/json": {"schema": S(schema)}}}
    if headers: r["headers"] = headers
    return {str(status): r}
etag = {"ETag": {"description": "the resource's version", "schema": {"type": "string"}}}
common = [401, 403, 500]
def op(summary, role, responses, params=None, body=None, opid=None, idem=False, ifmatch=False):
    o = {"summary": summary, "operationId": opid, "description": "Needs the %s role." % role if role else summary, "responses": responses}
    ps = list(params or [])
    if idem: ps.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if ifmatch: ps.append({"$ref": "#/components/parameters/IfMatch"})
    if ps: o["parameters"] = ps
    if body:
        o["requestBody"] = {"required": True, "content": {"application/json": {"schema": S(body) if isinstance(body, str) else body}}}
    if role:
        o["security"] = [{"bearer": []}]
    return o
def q(name, schema, desc):
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}
def p(name, desc):
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": desc}
limit = q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many items (default 100)")
cursor = q("cursor", {"type": "string"}, "the nextCursor of an earlier page")
def R(*dicts):
    out = {}
    for d in dicts: out.update(d)
    return out

paths = {
 "/openapi.json": {"get": {"summary": "This document", "operationId": "getOpenAPI", "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
 "/licenses": {
   "get": op("List licenses", "reader", R(ok(200, "LicensePage"), errs(400, *common)), opid="listLicenses",
       params=[limit, cursor, q("status", {"enum": ["active", "suspended", "revoked", "expired"]}, "only licenses with this status"),
               q("owner", {"type": "string"}, "only the licenses of this user"), q("q", {"type": "string"}, "only licenses whose key, note or owner contains this (any case)"),
               q("nearLimit", {"enum": ["true", "false"]}, "only licenses neither revoked nor suspended whose devices take at least nine tenths of their seats")]),
   "post": op("Create a license", "operator", R(ok(201, "License", "Created", R(etag, {"Location": {"schema": {"type": "string"}}})), errs(400, 404, 409, 413, 422, *common)),
       body="LicenseCreate", opid="createLicense", idem=True)},
 "/licenses/{key}": {
   "parameters": [p("key", "the license key or serial number")],
   "get": op("Get a license", "reader", R(ok(200, "License", headers=etag), errs(404, *common)), opid="getLicense"),
   "patch": op("Change a license", "operator", R(ok(200, "License", headers=etag), errs(400, 404, 409, 412, 413, *common)), body="LicensePatch", opid="updateLicense", ifmatch=True)},
}
for action, summary in [("suspend", "Suspend a license: its sessions stop validating until it is resumed"),
                        ("resume", "Resume a suspended license"), ("revoke", "Revoke a license for good")]:
    paths["/licenses/{key}/" + action] = {"parameters": [p("key", "the license key or serial number")],
        "post": op(summary, "operator", R(ok(200, "License", headers=etag), errs(400, 404, 409, 412, 422, *common)), opid=action + "License", idem=True, ifmatch=True)}
paths.update({
 "/sessions": {"get": op("List sessions", "reader", R(ok(200, "SessionPage"), errs(400, 404, *common)), opid="listSessions",
     params=[limit, cursor, q("license", {"type": "string"}, "only the sessions of this license"), q("live", {"enum": ["true", "false"]}, "only live sessions, or only the others")])},
 "/sessions/{id}": {"parameters": [p("id", "the session id")],
     "get": op("Get a session", "reader", R(ok(200, "Session"), errs(400, 404, *common)), opid="getSession"),
     "delete": op("Revoke a session: it stops validating and frees its seat", "operator", R(ok(200, "Session"), errs(400, 404, *common)), opid="revokeSession")},
 "/users": {"get": op("List users", "reader", R(ok(200, "UserPage"), errs(400, *common)), params=[limit, cursor], opid="listUsers"),
            "post": op("Create a user", "admin", R(ok(201, "User", "Created", R(etag, {"Location": {"schema": {"type": "string"}}})), errs(400, 409, 413, 422, *common)), body="UserCreate", opid="createUser", idem=True)},
 "/users/{username}": {"parameters": [p("username", "the username")],
     "get": op("Get a user", "reader", R(ok(200, "User", headers=etag), errs(404, *common)), opid="getUser"),
     "patch": op("Change a user", "admin", R(ok(200, "User", headers=etag), errs(400, 404, 412, 413, *common)), body="UserPatch", opid="updateUser", ifmatch=True)},
 "/serials": {"get": op("List registered serial numbers", "reader", R(ok(200, "SerialPage"), errs(400, *common)), params=[limit, cursor], opid="listSerials"),
              "post": op("Register a device serial number", "operator", R(ok(201, "Serial", "Created"), errs(400, 409, 413, 422, *common)), body="SerialCreate", opid="registerSerial", idem=True)},
 "/tokens": {"get": op("List API tokens (never their secrets)", "admin", R(ok(200, "TokenPage"), errs(*common)), opid="listTokens"),
             "post": op("Create an API token; its secret is in this answer only", "admin", R(ok(201, "Token", "Created"), errs(400, 413, 422, *common)), body="TokenCreate", opid="createToken", idem=True)},
 "/tokens/{id}": {"parameters": [p("id", "the token id")],
     "delete": op("Revoke an API token", "admin", R(ok(200, "Token"), errs(404, *common)), opid="revokeToken")},
 "/stats": {"get": op("What an overview shows first", "reader", R(ok(200, "Stats"), errs(*common)), opid="getStats")},
 "/seats/check": {"get": op("Recount every license's seats from its sessions", "reader", R(ok(200, "SeatCheck"), errs(*common)), opid="checkSeats")},
 "/seats/repair": {"post": op("Recount and set every mismatching license's seats, in one transaction", "admin", R(ok(200, "SeatCheck"), errs(422, *common)), opid="repairSeats", idem=True)},
 "/signing-keys/rotate": {"post": op("Add a JWT signing key (with dropOld: delete the others)", "admin", R(ok(200, "Rotated"), errs(400, 413, 422, *common)),
     body={"type": "object", "properties": {"dropOld": {"type": "boolean"}}, "additionalProperties": False}, opid="rotateSigningKey", idem=True)},
 "/manifests": {"get": op("List app manifests", "reader", R(ok(200, "ManifestPage"), errs(*common)), params=[q("app", {"type": "string"}, "only the manifests of this app")], opid="listManifests"),
     "post": op("Add an app manifest (the body is the manifest)", "operator", R(ok(201, "Manifest", "Created"), errs(400, 413, 422, *common)),
         params=[q("official", {"enum": ["true", "false"]}, "mark the app official, or not")], body={"type": "object"}, opid="addManifest", idem=True)},
 "/manifests/{app}/{version}": {"parameters": [p("app", "the app"), p("version", "the app version")],
     "get": op("Get the manifest variants of an app version", "reader", R(ok(200, "ManifestPage"), errs(404, *common)), opid="getManifests"),
     "delete": op("Remove manifest variants", "operator", R(ok(200, "Removed"), errs(404, *common)), params=[q("schemaVersion", {"type": "string"}, "only this variant")], opid="removeManifests")},
 "/apps/{app}": {"parameters": [p("app", "the app")], "get": op("Get an app", "reader", R(ok(200, "App"), errs(404, *common)), opid="getApp")},
 "/apps/{app}/credentials": {"parameters": [p("app", "the app")],
     "put": op("Set an official app's registry credentials (kept encrypted, never shown)", "operator", R(ok(200, "App"), errs(400, 404, 413, *common)), body="Credentials", opid="setCredentials")},
 "/token-issuances": {"get": op("List recorded download-token answers", "reader", R(ok(200, "TokenIssuancePage"), errs(400, *common)),
     params=[q("session", {"type": "string"}, "only those of this session")], opid="listTokenIssuances")},
 "/products": {"get": op("List the product catalogue", "reader", R(ok(200, "ProductPage"), errs(400, *common)), params=[q("store", {"type": "string"}, "only the products of this store id")], opid="listProducts"),
     "post": op("Import products (a JSON array of product documents), all or nothing", "operator", R(ok(200, "ProductPage"), errs(400, 413, 422, *common)), body={"type": "array"}, opid="importProducts", idem=True)},
 "/subscriptions": {"get": op("List subscriptions", "reader", R(ok(200, "SubscriptionPage"), errs(404, *common)), params=[q("user", {"type": "string"}, "only those of this user")], opid="listSubscriptions"),
     "post": op("Record a user's subscription of a product", "operator", R(ok(201, "Subscription", "Created"), errs(400, 404, 413, 422, *common)), body="SubscriptionCreate", opid="addSubscription", idem=True)},
 "/audit": {"get": op("List audit entries", "reader", R(ok(200, "AuditEntryPage"), errs(400, *common)), opid="listAudit",
     params=[limit, cursor, q("after", {"type": "string"}, "only entries after this sequence number"), q("action", {"type": "string"}, "only entries of this action"),
             q("target", {"type": "string"}, "only entries of this target (license:KEY names a license by its key)"), q("actor", {"type": "string"}, "only entries of this actor name")])},
 "/audit/key": {"get": op("The audit log's verifier keys", "reader", R(ok(200, "AuditKey"), errs(*common)), opid="getAuditKey")},
 "/audit/checkpoint": {"get": op("The latest signed checkpoint (signed first when the log has grown, at most once a second)", "reader",
     R(ok(200, "Checkpoint"), errs(404, *common)), opid="getAuditCheckpoint")},
 "/audit/proof/{seq}": {"parameters": [p("seq", "the entry's sequence number")],
     "get": op("Prove that an entry is in the tree of a size", "reader", R(ok(200, "Inclusion"), errs(400, 404, *common)), opid="proveAuditEntry",
         params=[q("size", {"type": "integer", "minimum": 1}, "the tree size (default: the latest checkpoint's)")])},
 "/audit/consistency": {"get": op("Prove that the tree of a size extends a smaller one", "reader", R(ok(200, "Consistency"), errs(400, 404, *common)), opid="proveAuditConsistency",
     params=[{"name": "from", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}, "description": "the smaller tree size"},
             q("to", {"type": "integer", "minimum": 1}, "the larger tree size (default: the latest checkpoint's)")])},
 "/offline/certificates": {
   "get": op("List offline certificates: each device key's latest", "reader", R(ok(200, "OfflineCertificatePage"), errs(400, 404, *common)), opid="listOfflineCertificates",
       params=[limit, cursor, q("license", {"type": "string"}, "only the certificates of this license")]),
   "post": {**op("Issue an offline certificate for a device's request: it holds a seat of the license until not-after or deactivation (a re-issue to the same device key keeps its seat)", "operator",
       R({"201": {"description": "Issued: the certificate note as text for a text request, else JSON", "content": {
           "application/json": {"schema": S("OfflineIssued")}, "text/plain": {"schema": {"type": "string"}}}}}, errs(400, 404, 409, 413, 422, *common)),
       params=[q("ttl", {"type": "string"}, "with a text body: the certificate's lifetime, such as 90d (the default) or 36h")], opid="issueOfflineCertificate"),
     "requestBody": {"required": True, "content": {"application/json": {"schema": S("OfflineIssue")},
         "text/plain": {"schema": {"type": "string", "description": "the device's offline request note"}}}}}},
 "/offline/deactivations": {"post": {**op("Take a device's deactivation proof: frees its certificate's seat, once (a replay is 409 and frees nothing)", "operator",
       R(ok(200, "OfflineDeactivated"), errs(400, 404, 409, 413, *common)), opid="deactivateOfflineCertificate"),
     "requestBody": {"required": True, "content": {"application/json": {"schema": S("OfflineDeactivate")},
         "text/plain": {"schema": {"type": "string", "description": "the device's deactivation note"}}}}}},
 "/offline/key": {"get": op("The verifier key devices pin to check certificates", "reader", R(ok(200, "OfflineKey"), errs(*common)), opid="getOfflineKey")},
})
doc = {
 "openapi": "3.1.0",
 "info": {"title": "OpenConsole operator API", "version": "1",
          "description": "Administer OpenConsole over HTTP: licenses, sessions, users, serial numbers, API tokens, the app catalogue, statistics, the audit log and offline certificates. JSON in and out, camelCase fields, times in RFC 3339 UTC. Errors are RFC 9457 problem details (application/problem+json) with a stable code. Creating POSTs take an Idempotency-Key; single resources carry an ETag that PATCH and the state-changing POSTs check with If-Match."},
 "servers": [{"url": "/api/openconsole/v1"}],
 "security": [{"bearer": []}],
 "paths": paths,
 "components": {
   "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token (openconsole token create), or a local admin socket or web session, which need none"}},
   "parameters": {
     "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 255},
        "description": "The same key with the same request within 24 hours gets the first answer again (with Idempotent-Replayed: true) and changes nothing; with another request, 422."},
     "IfMatch": {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}, "description": "The ETag the change expects; 412 when the resource changed meanwhile"}},
   "responses": {"Problem": {"description": "A refusal or failure", "content": {"application/problem+json": {"schema": S("Problem")}}}},
   "schemas": schemas},
}
import os
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.json"), "w") as f:
    json.dump(doc, f, indent=1, sort_keys=False)
    f.write("\n")
