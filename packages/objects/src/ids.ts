import { createHmac, randomBytes } from "node:crypto";

/**
 * A Durable Object's identity, compatible with Cloudflare's `DurableObjectId`: 64 hex digits, the
 * first 32 derived from the name (or random), the last 32 a keyed hash of the first half, so
 * `idFromString` can tell an id of this namespace from a made-up one.
 */
export class DurableObjectId {
  readonly #hex: string;
  /** The name it was made from (`idFromName`, `getByName`); undefined for unique and parsed ids. */
  readonly name?: string;

  /** @internal Use a namespace's `idFromName`, `idFromString` or `newUniqueId`. */
  constructor(hex: string, name?: string) {
    this.#hex = hex;
    if (name !== undefined) this.name = name;
  }

  /** The 64 lower-case hex digits. */
  toString(): string {
    return this.#hex;
  }

  equals(other: DurableObjectId): boolean {
    return other instanceof DurableObjectId && other.#hex === this.#hex;
  }

  toJSON(): string {
    return this.#hex;
  }

  /** No jurisdictions in Cairn. */
  get jurisdiction(): undefined {
    return undefined;
  }
}

const HEX_ID = /^[0-9a-fA-F]{64}$/;

/** Makes and checks the ids of one namespace, keyed by the namespace's secret. */
export class IdFactory {
  readonly #key: Buffer;

  constructor(key: Uint8Array) {
    this.#key = Buffer.from(key);
  }

  fromName(name: string): DurableObjectId {
    if (typeof name !== "string")
      throw new TypeError(
        `idFromName: the name must be a string, got ${name === null ? "null" : typeof name}`,
      );
    const base = createHmac("sha256", this.#key).update(name, "utf8").digest().subarray(0, 16);
    return new DurableObjectId(this.#withMac(base), name);
  }

  unique(): DurableObjectId {
    return new DurableObjectId(this.#withMac(randomBytes(16)));
  }

  fromString(hex: string, name?: string): DurableObjectId {
    if (typeof hex !== "string" || !HEX_ID.test(hex))
      throw new TypeError("Invalid Durable Object ID: must be 64 hex digits");
    const lower = hex.toLowerCase();
    if (this.#withMac(Buffer.from(lower.slice(0, 32), "hex")) !== lower)
      throw new TypeError("Durable Object ID is not valid for this namespace.");
    return new DurableObjectId(lower, name);
  }

  #withMac(base: Buffer): string {
    const mac = createHmac("sha256", this.#key).update(base).digest().subarray(0, 16);
    return base.toString("hex") + mac.toString("hex");
  }
}
