// Drives an Inference-X server with the official openai npm client:
// models list, a non-streaming and a streaming chat, a completion, and
// the 404 and 401 errors. Configured by IX_BASE_URL, IX_API_KEY, IX_MODEL
// and IX_EXPECT_COMPLETION (the greedy completion text). Exits non-zero
// on the first failed check.
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = process.env.IX_BASE_URL;
const apiKey = process.env.IX_API_KEY;
const model = process.env.IX_MODEL;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const report = {};

const models = await client.models.list();
assert.deepEqual(models.data.map((m) => m.id), [model]);
report.models = models.data.length;

const messages = [
  { role: "system", content: "You tell short stories." },
  { role: "user", content: "Tell me about Lily." },
];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
assert.equal(chat.object, "chat.completion");
assert.equal(chat.choices.length, 1);
assert.equal(chat.choices[0].message.role, "assistant");
assert.ok(chat.choices[0].message.content.length > 0, "empty chat content");
assert.ok(["stop", "length"].includes(chat.choices[0].finish_reason));
assert.ok(chat.usage.prompt_tokens > 0 && chat.usage.completion_tokens > 0);
assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens);
report.chat = chat.choices[0].message.content;

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let streamed = "";
let finish = null;
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  assert.equal(chunk.object, "chat.completion.chunk");
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed += c.delta?.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
}
assert.equal(streamed, chat.choices[0].message.content, "streamed chat differs from the non-streamed one");
assert.equal(finish, chat.choices[0].finish_reason);
assert.deepEqual(usage, chat.usage);
report.stream_chunks = chunks;

const completion = await client.completions.create({
  model, prompt: "Lily and Tom went to the", max_tokens: 32, temperature: 0,
});
assert.equal(completion.object, "text_completion");
assert.equal(completion.choices[0].text.trim(), process.env.IX_EXPECT_COMPLETION);
assert.equal(completion.choices[0].finish_reason, "length");
assert.equal(completion.usage.completion_tokens, 32);
report.completion = completion.choices[0].text;

await assert.rejects(
  client.chat.completions.create({ model: "no-such-model", messages }),
  (err) => err instanceof OpenAI.NotFoundError && err.status === 404 && err.code === "model_not_found",
);
const anonymous = new OpenAI({ baseURL, apiKey: "wrong-key", maxRetries: 0 });
await assert.rejects(anonymous.models.list(), (err) => err instanceof OpenAI.AuthenticationError && err.status === 401);
report.errors = "ok";

console.log(JSON.stringify(report));
