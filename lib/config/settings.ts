// Process settings from the environment, validated once into a frozen object.
// Defaults live in this one table.
import { z } from "zod";
import { parseTrustedProxies } from "../connection/forwarded.ts";

const port = z.coerce.number().int().min(0).max(65535);
const seconds = z.coerce.number().min(0);

const Schema = z.object({
  HBAGATE_LISTEN_HOST: z.string().default("127.0.0.1"),
  HBAGATE_PORT: port.default(8080),
  HBAGATE_HBA_FILE: z.string().optional(),
  HBAGATE_UPSTREAM_HOST: z.string().optional(),
  HBAGATE_UPSTREAM_PORT: port.default(5432),
  HBAGATE_ANONYMOUS_USER: z.string().optional(),
  HBAGATE_POOL_MAX: z.coerce.number().int().min(1).max(1000).default(10),
  HBAGATE_POOL_MAX_TOTAL: z.coerce.number().int().min(1).max(100_000).default(100),
  HBAGATE_IDLE_TIMEOUT: seconds.default(30),
  HBAGATE_CONNECT_TIMEOUT: seconds.default(10),
  HBAGATE_MAX_LIFETIME: seconds.default(1800),
  HBAGATE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).default(30000),
  HBAGATE_MAX_BODY_BYTES: z.coerce.number().int().min(1).default(1024 * 1024),
  /** Comma-separated browser origins allowed by CORS, or "*". */
  HBAGATE_CORS_ORIGINS: z
    .string()
    .default("")
    .transform((s) => s.split(",").map((o) => o.trim()).filter(Boolean)),
  HBAGATE_MAX_RESPONSE_ROWS: z.coerce.number().int().min(1).default(100_000),
  HBAGATE_MAX_RESPONSE_BYTES: z.coerce.number().int().min(1).default(64 * 1024 * 1024),
  HBAGATE_VERIFIER_FILE: z.string().optional(),
  /** The gateway's own login for catalog lookups (role membership for +group and samerole). */
  HBAGATE_SERVICE_USER: z.string().optional(),
  HBAGATE_SERVICE_PASSWORD: z.string().optional(),
  HBAGATE_SERVICE_DATABASE: z.string().default("postgres"),
  HBAGATE_ROLES_TTL_MS: z.coerce.number().int().min(0).default(10_000),
  /** Comma-separated addresses/CIDR ranges whose X-Forwarded-* headers are believed. */
  HBAGATE_TRUSTED_PROXIES: z
    .string()
    .default("")
    .transform((text, ctx) => {
      try {
        return parseTrustedProxies(text);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    }),
  HBAGATE_VERIFIED_TTL_MS: z.coerce.number().int().min(0).default(60_000),
  HBAGATE_VERIFIED_MAX: z.coerce.number().int().min(1).default(10_000),
});

export type Settings = Readonly<z.infer<typeof Schema>>;

/** Parse the environment; the error names the bad variable and value. */
export function settingsFromEnv(env: Readonly<Record<string, string | undefined>>): Settings {
  const parsed = Schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? "?");
      return `${key}=${JSON.stringify(env[key] ?? "")}: ${i.message}`;
    });
    throw new Error(`invalid settings:\n  ${lines.join("\n  ")}`);
  }
  return Object.freeze(parsed.data);
}
