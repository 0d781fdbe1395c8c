// Node server entry point (placeholder until the gateway lands).
export async function start(_args: readonly string[]): Promise<number> {
  process.stderr.write("hbagate start: the gateway is not built yet\n");
  return 1;
}
