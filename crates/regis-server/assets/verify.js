// Checks, in the reader's own browser, that the record on this page is in
// the register as its custodian signed it, trusting nothing the server says
// but the verifier key printed on the page. Served by Regis itself (no CDN).
//
// The page's #verify section carries what to check in data attributes:
// data-proof-url (the record's proof bundle, B/records/{key}/proof),
// data-verifier-key, data-log-origin, data-key, data-entry-number,
// data-item-hash (of the item shown) and data-witnesses-required; its
// #verify-witnesses list, the witnesses of the register's policy
// (data-witness-name, data-witness-key). Steps, each named when it fails:
//   1. the leaf bytes name this key and entry, and the items' SHA-256 are
//      the entry's item-hash (and the item shown on the page);
//   2. the leaf hash is SHA-256(0x00 || leaf bytes);
//   3. the RFC 9162 (2.1.3.2) inclusion proof leads from it to the root of
//      the checkpoint's tree;
//   4. the checkpoint note is signed by the register's Ed25519 key
//      (C2SP signed-note);
//   5. each cosignature by a listed witness verifies (C2SP tlog-cosignature,
//      cosignature/v1) with a time neither zero nor in the future, and at
//      least one is there if the policy requires cosignatures. Each
//      witness's line in the list says what was found.
// With data-links="true", the bundle is asked for with ?links=1 and each
// row of the #links table that names a verifier key (a target the server
// found) is checked the same way: the target's tlog-proof (leaf, items,
// inclusion, the signature by that register's key), the row saying what
// was found.
"use strict";

(function () {
  const section = document.getElementById("verify");
  const status = document.getElementById("verify-status");
  if (!section || !status || !window.crypto || !crypto.subtle) {
    return;
  }
  section.hidden = false;

  class Failure extends Error {}
  const fail = (what) => {
    throw new Failure(what);
  };

  const utf8 = new TextEncoder();

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  function equal(a, b) {
    return a.length === b.length && a.every((byte, i) => byte === b[i]);
  }

  function fromHex(text) {
    return Uint8Array.from(text.match(/../g) || [], (pair) => parseInt(pair, 16));
  }

  function fromBase64(text, what) {
    let binary;
    try {
      binary = atob(text);
    } catch (_) {
      fail(what + " is not base64");
    }
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  function parseHash(text, what) {
    const match = /^sha-256:([0-9a-f]{64})$/.exec(typeof text === "string" ? text : "");
    if (!match) {
      fail(what + " is not a sha-256 hash");
    }
    return fromHex(match[1]);
  }

  // RFC 9162 section 2.1.3.2: the root that `path` leads to from the leaf
  // hash at `index` in a tree of `size` leaves (BigInt: any tree size).
  async function rootFromInclusionProof(index, size, leafHash, path) {
    if (index >= size) {
      fail("inclusion proof: the entry is beyond the checkpoint's tree size");
    }
    let fn = index;
    let sn = size - 1n;
    let r = leafHash;
    for (const p of path) {
      if (sn === 0n) {
        fail("inclusion proof: the audit path has too many hashes");
      }
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(concat(Uint8Array.of(1), p, r));
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = await sha256(concat(Uint8Array.of(1), r, p));
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) {
      fail("inclusion proof: the audit path has too few hashes");
    }
    return r;
  }

  // A C2SP checkpoint in a signed note: the signed text is everything up
  // to and including the newline before the blank line.
  function parseCheckpoint(text) {
    if (typeof text !== "string") {
      fail("checkpoint: the proof carries none");
    }
    const blank = text.indexOf("\n\n");
    if (blank < 0) {
      fail("checkpoint: no blank line before its signatures");
    }
    const body = text.slice(0, blank + 1);
    const signatures = text.slice(blank + 2).split("\n");
    if (signatures.pop() !== "") {
      fail("checkpoint: it does not end with a newline");
    }
    const lines = body.split("\n");
    lines.pop();
    if (lines.length < 3) {
      fail("checkpoint: fewer than three lines");
    }
    const [origin, sizeText, rootText] = lines;
    if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText)) {
      fail("checkpoint: its size is not a number");
    }
    const root = fromBase64(rootText, "checkpoint: its root hash");
    if (root.length !== 32) {
      fail("checkpoint: its root hash is not 32 bytes");
    }
    return { body, origin, size: BigInt(sizeText), root, signatures };
  }

  // A verifier key `name+<8 hex key id>+<base64(type || Ed25519 key)>` of
  // signature type `type` (0x01 a log's, 0x04 a witness's cosignature/v1);
  // `what` names the step in failures.
  async function parseVerifierKey(text, type, what) {
    const match = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(text || "");
    if (!match) {
      fail(what + ": the page's verifier key is malformed");
    }
    const [, name, idHex, keyBase64] = match;
    const key = fromBase64(keyBase64, what + ": the verifier key");
    if (key.length !== 33 || key[0] !== type) {
      fail(what + ": the verifier key is not an Ed25519 key of type " + type);
    }
    const id = (await sha256(concat(utf8.encode(name), Uint8Array.of(0x0a), key))).slice(0, 4);
    if (!equal(id, fromHex(idHex))) {
      fail(what + ": the verifier key's id does not match its key");
    }
    let publicKey;
    try {
      publicKey = await crypto.subtle.importKey(
        "raw",
        key.slice(1),
        { name: "Ed25519" },
        false,
        ["verify"],
      );
    } catch (_) {
      fail(what + ": this browser cannot check Ed25519 signatures");
    }
    return { name, id, publicKey };
  }

  // The payloads (key id removed) of the checkpoint's signature lines by
  // `key` that are `length` bytes long.
  function signaturesBy(checkpoint, key, length, what) {
    const prefix = "\u2014 " + key.name + " ";
    return checkpoint.signatures
      .filter((line) => line.startsWith(prefix))
      .map((line) => fromBase64(line.slice(prefix.length), what + ": a signature line"))
      .filter((bytes) => bytes.length === length && equal(bytes.slice(0, 4), key.id))
      .map((bytes) => bytes.slice(4));
  }

  async function checkSignature(checkpoint, verifierKey) {
    const key = await parseVerifierKey(verifierKey, 0x01, "signature");
    const signatures = signaturesBy(checkpoint, key, 68, "signature");
    if (signatures.length === 0) {
      fail("signature: the checkpoint carries no signature by " + key.name);
    }
    const valid = await crypto.subtle.verify(
      { name: "Ed25519" },
      key.publicKey,
      signatures[0],
      utf8.encode(checkpoint.body),
    );
    if (!valid) {
      fail("signature: the checkpoint's signature by " + key.name + " is not valid");
    }
  }

  // How far ahead of this browser's clock a cosignature may be dated, as
  // regis-client allows.
  const MAX_FUTURE_SKEW = 60n;

  // A cosignature's time (POSIX seconds) as UTC, e.g. 2025-01-02T03:04:05Z.
  function utcTime(seconds) {
    if (seconds >= 253402300800n) {
      return "the year 10000 or later";
    }
    return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");
  }

  // C2SP tlog-cosignature, cosignature/v1: a signature line of 4 bytes of
  // key id, 8 of time (big-endian seconds) and 64 of Ed25519 signature over
  // "cosignature/v1\ntime <t>\n" and the checkpoint text. Returns the time
  // of the witness's cosignature, or null if it made none; a cosignature
  // that does not verify, or is dated zero or in the future, fails.
  async function checkCosignature(checkpoint, witnessKey, now) {
    const key = await parseVerifierKey(witnessKey, 0x04, "cosignature");
    let cosignedAt = null;
    for (const payload of signaturesBy(checkpoint, key, 76, "cosignature")) {
      const time = new DataView(payload.buffer, payload.byteOffset, 8).getBigUint64(0);
      const message = utf8.encode("cosignature/v1\ntime " + time + "\n" + checkpoint.body);
      if (time === 0n) {
        fail("its cosignature is dated zero");
      }
      const valid = await crypto.subtle.verify(
        { name: "Ed25519" },
        key.publicKey,
        payload.slice(8),
        message,
      );
      if (!valid) {
        fail("its cosignature dated " + utcTime(time) + " is not valid");
      }
      if (time > now + MAX_FUTURE_SKEW) {
        fail("its cosignature is dated " + utcTime(time) + ", in the future");
      }
      cosignedAt = utcTime(time);
    }
    return cosignedAt;
  }

  // Checks the cosignatures of each listed witness, and says on its line of
  // the list what was found. One that fails fails the whole check (as a
  // known key's signature does in a signed note); lines of keys not listed
  // are ignored. Returns the names of the witnesses that cosigned.
  async function checkCosignatures(checkpoint, witnesses, required) {
    const now = BigInt(Math.floor(Date.now() / 1000));
    const cosigned = [];
    let failure = null;
    for (const witness of witnesses) {
      const name = witness.dataset.witnessName;
      try {
        const at = await checkCosignature(checkpoint, witness.dataset.witnessKey, now);
        witness.dataset.result = at ? "verified" : "absent";
        witness.textContent = name + (at ? ": cosigned at " + at : ": no cosignature");
        if (at) {
          cosigned.push(name);
        }
      } catch (error) {
        if (!(error instanceof Failure)) {
          throw error;
        }
        witness.dataset.result = "failed";
        witness.textContent = name + ": " + error.message;
        failure = failure || "cosignature: " + name + ": " + error.message;
      }
    }
    if (failure) {
      fail(failure);
    }
    if (required && cosigned.length === 0) {
      fail("cosignature: no witness of the register's policy cosigned the checkpoint");
    }
    return cosigned;
  }

  // Each item's SHA-256 is the entry's item-hash at its place.
  async function checkItems(itemHashes, items) {
    for (let i = 0; i < itemHashes.length; i++) {
      if (typeof items[i] !== "string") {
        fail("item hash: an item is not text");
      }
      const actual = await sha256(utf8.encode(items[i]));
      if (!equal(actual, parseHash(itemHashes[i], "item hash: the entry's item-hash"))) {
        fail("item hash: the item's SHA-256 is not the entry's item-hash");
      }
    }
  }

  // A C2SP tlog-proof: its header, `extra` (the leaf bytes), `index`, the
  // audit path one base64 hash a line, a blank line and the checkpoint.
  function parseTlogProof(text) {
    if (typeof text !== "string") {
      fail("tlog-proof: the bundle carries none");
    }
    const lines = text.split("\n");
    if (lines[0] !== "c2sp.org/tlog-proof@v1") {
      fail("tlog-proof: it is not a C2SP tlog-proof");
    }
    if (!(lines[1] || "").startsWith("extra ")) {
      fail("tlog-proof: it carries no leaf bytes");
    }
    const leaf = fromBase64(lines[1].slice(6), "tlog-proof: its leaf bytes");
    const index = /^index (0|[1-9][0-9]{0,19})$/.exec(lines[2] || "");
    if (!index) {
      fail("tlog-proof: it has no index line");
    }
    let i = 3;
    const path = [];
    for (; i < lines.length && lines[i] !== ""; i++) {
      const hash = fromBase64(lines[i], "tlog-proof: an audit path hash");
      if (hash.length !== 32) {
        fail("tlog-proof: an audit path hash is not 32 bytes");
      }
      path.push(hash);
    }
    if (i >= lines.length) {
      fail("tlog-proof: it carries no checkpoint");
    }
    const checkpoint = parseCheckpoint(lines.slice(i + 1).join("\n"));
    return { leaf, index: BigInt(index[1]), path, checkpoint };
  }

  // One link of the bundle (`?links=1`): the target record's tlog-proof,
  // checked against the verifier key the page gives for its register, as
  // the record itself is checked.
  async function verifyLink(link, row) {
    if (!link || link.field !== row.dataset.linkField || link.value !== row.dataset.linkValue) {
      fail("the bundle's link is not the one shown");
    }
    if (link.status !== "found") {
      fail("the server says it is " + link.status);
    }
    const proof = parseTlogProof(link["tlog-proof"]);
    let leaf;
    try {
      leaf = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(proof.leaf));
    } catch (_) {
      fail("entry: the leaf bytes are not JSON");
    }
    if (leaf.key !== link.key || link.key !== row.dataset.linkKey) {
      fail("entry: the proof is for another key");
    }
    if (leaf["entry-number"] !== String(proof.index + 1n)) {
      fail("entry: the proof's index is not its entry's");
    }
    const itemHashes = leaf["item-hash"];
    if (
      !Array.isArray(itemHashes) ||
      !Array.isArray(link.items) ||
      itemHashes.length === 0 ||
      itemHashes.length !== link.items.length
    ) {
      fail("item hash: the proof's items do not match the entry's item-hash list");
    }
    await checkItems(itemHashes, link.items);
    const leafHash = await sha256(concat(Uint8Array.of(0), proof.leaf));
    const root = await rootFromInclusionProof(
      proof.index,
      proof.checkpoint.size,
      leafHash,
      proof.path,
    );
    if (!equal(root, proof.checkpoint.root)) {
      fail("inclusion proof: the audit path does not lead to the checkpoint's root hash");
    }
    const key = row.dataset.verifierKey || "";
    if (proof.checkpoint.origin !== key.split("+")[0]) {
      fail("checkpoint: it is for another log (" + proof.checkpoint.origin + ")");
    }
    await checkSignature(proof.checkpoint, key);
    return { number: leaf["entry-number"], size: proof.checkpoint.size };
  }

  // Checks each link row of the page against the bundle, and says on the
  // row what was found; rows the server did not find are left as it said.
  async function verifyLinks(bundle) {
    for (const row of document.querySelectorAll("#links tr[data-verifier-key]")) {
      const cell = row.querySelector(".link-status");
      try {
        const link = (bundle.links || [])[Number(row.dataset.linkIndex)];
        const { number, size } = await verifyLink(link, row);
        row.dataset.result = "verified";
        cell.textContent =
          "verified in your browser: entry " + number + " of " + link.register +
          ", signed at size " + size;
      } catch (error) {
        row.dataset.result = "failed";
        row.className = "link-unverified";
        cell.textContent =
          "not verified: " +
          (error instanceof Failure ? error.message : "the check stopped (" + error + ")");
      }
    }
  }

  async function verify(expected) {
    let response;
    try {
      const url = expected.proofUrl + (expected.links === "true" ? "?links=1" : "");
      response = await fetch(url, {
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
    } catch (_) {
      fail("the proof could not be fetched");
    }
    if (!response.ok) {
      fail("the proof could not be fetched (HTTP " + response.status + ")");
    }
    let proof;
    try {
      proof = await response.json();
    } catch (_) {
      fail("the proof is not JSON");
    }

    if (expected.links === "true") {
      await verifyLinks(proof);
    }

    // 1. The entry and its items.
    if (typeof proof.leaf !== "string") {
      fail("entry: the proof carries no leaf bytes");
    }
    let leaf;
    try {
      leaf = JSON.parse(proof.leaf);
    } catch (_) {
      fail("entry: the leaf bytes are not JSON");
    }
    if (leaf.key !== expected.key) {
      fail("entry: the proof is for another key");
    }
    if (leaf["entry-number"] !== expected.entryNumber) {
      fail("entry: the proof is for another entry");
    }
    const itemHashes = leaf["item-hash"];
    if (
      !Array.isArray(itemHashes) ||
      !Array.isArray(proof.items) ||
      itemHashes.length === 0 ||
      itemHashes.length !== proof.items.length
    ) {
      fail("item hash: the proof's items do not match the entry's item-hash list");
    }
    await checkItems(itemHashes, proof.items);
    if (itemHashes[0] !== expected.itemHash) {
      fail("item hash: the proven item is not the one shown on this page");
    }

    // 2. The leaf hash.
    const leafHash = await sha256(concat(Uint8Array.of(0), utf8.encode(proof.leaf)));

    // 3. The checkpoint, and the inclusion proof to its root.
    const checkpoint = parseCheckpoint(proof.checkpoint);
    if (checkpoint.origin !== expected.logOrigin) {
      fail("checkpoint: it is for another log (" + checkpoint.origin + ")");
    }
    const path = proof["merkle-audit-path"];
    if (!Array.isArray(path)) {
      fail("inclusion proof: the proof carries no audit path");
    }
    const root = await rootFromInclusionProof(
      BigInt(expected.entryNumber) - 1n,
      checkpoint.size,
      leafHash,
      path.map((hash) => parseHash(hash, "inclusion proof: an audit path hash")),
    );
    if (!equal(root, checkpoint.root)) {
      fail("inclusion proof: the audit path does not lead to the checkpoint's root hash");
    }

    // 4. The custodian's signature on the checkpoint.
    await checkSignature(checkpoint, expected.verifierKey);

    // 5. The witnesses' cosignatures.
    const cosigned = await checkCosignatures(
      checkpoint,
      section.querySelectorAll("#verify-witnesses li"),
      expected.witnessesRequired === "true",
    );
    return { size: checkpoint.size, cosigned };
  }

  function show(result, text) {
    status.dataset.result = result;
    status.textContent = text;
  }

  const expected = section.dataset;
  if (!/^[1-9][0-9]{0,19}$/.test(expected.entryNumber || "")) {
    show("failed", "Not verified: the page names no entry to check.");
    return;
  }
  show("checking", "Checking the proof in your browser\u2026");
  verify(expected).then(
    ({ size, cosigned }) =>
      show(
        "verified",
        "Verified: entry " +
          expected.entryNumber +
          " is in the register as signed at size " +
          size +
          (cosigned.length > 0 ? " and cosigned by " + cosigned.join(", ") : "") +
          ".",
      ),
    (error) =>
      show(
        "failed",
        "Not verified: " +
          (error instanceof Failure ? error.message : "the check stopped (" + error + ")") +
          ".",
      ),
  );
})();
