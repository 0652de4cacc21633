// A fake webhook receiver on loopback: records every request (path, headers, JSON body) and
// answers with `status` (200 unless changed).
import http from "node:http";

export async function webhookReceiver() {
  const requests = [];
  let status = 200;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => { body += d; });
    req.on("end", () => {
      let json = null;
      try { json = JSON.parse(body); } catch { json = null; }
      requests.push({ path: req.url, headers: req.headers, body: json });
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ received: true }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    requests,
    answer(code) { status = code; },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
