// pg_type.typlen of the built-in types, for Neon's dataTypeSize field
// (postgres.js does not pass RowDescription's size on). -1 = variable length.
const SIZES: Readonly<Record<number, number>> = {
  16: 1, // bool
  18: 1, // char
  19: 64, // name
  20: 8, // int8
  21: 2, // int2
  23: 4, // int4
  26: 4, // oid
  28: 4, // xid
  700: 4, // float4
  701: 8, // float8
  790: 8, // money
  1082: 4, // date
  1083: 8, // time
  1114: 8, // timestamp
  1184: 8, // timestamptz
  1186: 16, // interval
  1266: 12, // timetz
  2950: 16, // uuid
  3220: 8, // pg_lsn
};

export function typeSize(oid: number): number {
  return SIZES[oid] ?? -1;
}
