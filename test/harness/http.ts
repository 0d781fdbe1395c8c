// What the tests send the gateway over HTTP: the Basic credentials header.

/** An `Authorization: Basic` value for `user` and `password` (empty password by default). */
export const basic = (user: string, password = "") => "Basic " + Buffer.from(`${user}:${password}`).toString("base64");
