import { parseNumericHost, type IpAddress } from "../../lib/hba/address.ts";

export function parseIpForTest(text: string): IpAddress {
  const a = parseNumericHost(text);
  if (!a) throw new Error(`not an address: ${text}`);
  return a;
}
