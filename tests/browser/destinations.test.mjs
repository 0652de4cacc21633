// Destinations in the console: a webhook created against a local receiver, its inline
// validation, a test event with the receiver's answer, and a real event's delivery.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  screenshot, assertAccessible, sendEvents, signingSecret, webhookReceiver, eventually, suite,
} from "./lib/index.mjs";

const ctx = suite({
  email: "admin2@shop.example",
  role: "admin",
  async setup(c) {
    c.receiver = await webhookReceiver();
    c.close = () => c.receiver.close();
  },
});

test("a webhook destination is created with inline validation, tested, and receives a real event", async () => {
  const { server, browser, receiver } = ctx;
  const { page, guard } = browser;
  await page.goto(`${server.url}/destinations`);
  await page.getByRole("link", { name: "Add destination" }).click();
  await page.getByRole("link", { name: "Webhook" }).click();
  await page.getByLabel("Name", { exact: true }).fill("Warehouse");
  await page.getByLabel("URL").fill("ftp://not-a-webhook");
  await page.getByLabel("Signing secret").fill(signingSecret());
  await page.getByRole("button", { name: "Create destination" }).click();
  // The core's 422 is shown beside the field it names.
  const invalid = page.locator('[aria-invalid="true"]');
  await invalid.first().waitFor();
  assert.equal(await invalid.first().getAttribute("name"), "config.url");
  await assertAccessible(page, "/destinations (refused form)");
  await screenshot(page, "destination-validation");

  await page.getByLabel("URL").fill(receiver.url);
  await page.getByLabel("Signing secret").fill(signingSecret());
  await page.getByRole("button", { name: "Create destination" }).click();
  await page.getByText("Destination created.").waitFor();
  const body = await page.textContent("body");
  assert.match(body, /fingerprint [0-9a-f]+ · ends in/, "the secret shows as fingerprint and last 4");

  await page.getByRole("button", { name: "Send test event" }).click();
  await page.getByRole("heading", { name: /Test event: delivered/ }).waitFor();
  assert.equal(receiver.requests.length, 1, "the receiver got the test event");
  await screenshot(page, "destination", { narrow: true });

  const [messageId] = await sendEvents(server, ["Order Completed"]);
  await eventually(() => receiver.requests.length >= 2, "the event's delivery to the receiver");
  const url = page.url().split("?")[0].replace(/\/test$/, "");
  await eventually(async () => {
    await page.goto(url);
    return (await page.textContent("table")).includes(messageId);
  }, "the delivery in the delivery log");
  assert.match(await page.textContent("table"), /delivered/);
  await assertAccessible(page, "/destinations/{id}");

  // The overview counts the delivery (the test event is not counted: it is not stored).
  await eventually(async () => {
    await page.goto(`${server.url}/?window=1h`);
    const row = page.locator("tr", { hasText: "Warehouse" });
    const cells = await row.locator("td").allTextContents();
    return cells.length > 3 && Number(cells[3].trim()) >= 1;
  }, "the delivery on the overview");
  await page.locator("svg.chart").first().waitFor();
  await assertAccessible(page, "/ (overview with a destination)");
  await screenshot(page, "overview-webhook", { narrow: true });

  await page.goto(url);
  await page.getByRole("link", { name: "← Destinations" }).click();
  await page.getByRole("link", { name: "Warehouse" }).waitFor();
  await screenshot(page, "destinations", { narrow: true });
  guard.check();
});
