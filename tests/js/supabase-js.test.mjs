// The official @supabase/supabase-js client against the local stack, for the
// query shapes apps use. Each answer is compared with what PostgREST
// documents (postgrest.org "Tables and Views", "Resource Embedding",
// "Errors"; supabase.com/docs/reference/javascript), so any client, not only
// mailsync, gets from the local stack what a hosted project answers.
//
// Run by tests/hosted_stack.rs (`supabase_js_answers_as_postgrest_documents`),
// which creates a fresh user and passes, in the environment:
//   SUPABASE_URL, SUPABASE_ANON_KEY, MAILSYNC_TEST_TOKEN (the user's JWT),
//   MAILSYNC_TEST_USER_ID.
// By hand: `npm ci` here, then the same variables and `node --test`.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';

const url = process.env.SUPABASE_URL;
const anonKey = process.env.SUPABASE_ANON_KEY;
const token = process.env.MAILSYNC_TEST_TOKEN;
const userId = process.env.MAILSYNC_TEST_USER_ID;
if (!url || !anonKey || !token || !userId) {
  throw new Error(
    'SUPABASE_URL, SUPABASE_ANON_KEY, MAILSYNC_TEST_TOKEN and MAILSYNC_TEST_USER_ID must be set',
  );
}

const db = createClient(url, anonKey, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  global: { headers: { Authorization: `Bearer ${token}` } },
});

// Names that a form-encoded query string carries as '+' (spaces), as
// percent escapes (accents, '&', ','), and a literal plus, which supabase-js
// sends as %2B and must stay a plus.
const ORGS = ['Acme SARL', 'Café Crème', 'Zoë & Søn, Ltd', 'Plus+Sign', 'Müller GmbH'];
const CONTACTS = 25;

function ok(res, what) {
  assert.equal(res.error, null, `${what}: ${JSON.stringify(res.error)}`);
  return res;
}

before(async () => {
  ok(await db.from('organizations').insert(ORGS.map((name) => ({ name }))), 'inserting organizations');
  const contacts = Array.from({ length: CONTACTS }, (_, i) => ({
    email: `c${String(i).padStart(2, '0')}@example.test`,
    organization_name: ORGS[i % ORGS.length],
  }));
  ok(await db.from('contacts').insert(contacts), 'inserting contacts');
});

test('eq with a space: `+` in the query string is a space', async () => {
  const res = ok(await db.from('organizations').select('name').eq('name', 'Acme SARL'), 'eq');
  assert.equal(res.status, 200);
  assert.deepEqual(res.data, [{ name: 'Acme SARL' }]);
});

test('eq with accents and punctuation (percent escapes)', async () => {
  for (const name of ['Café Crème', 'Zoë & Søn, Ltd', 'Müller GmbH']) {
    const res = ok(await db.from('organizations').select('name').eq('name', name), name);
    assert.deepEqual(res.data, [{ name }], name);
  }
});

test('a literal plus (%2B) stays a plus', async () => {
  const res = ok(await db.from('organizations').select('name').eq('name', 'Plus+Sign'), 'eq plus');
  assert.deepEqual(res.data, [{ name: 'Plus+Sign' }]);
  const none = ok(await db.from('organizations').select('name').eq('name', 'Plus Sign'), 'eq space');
  assert.deepEqual(none.data, []);
});

test('in with spaces, accents and commas (quoted by supabase-js)', async () => {
  const res = ok(
    await db
      .from('organizations')
      .select('name')
      .in('name', ['Acme SARL', 'Café Crème', 'Zoë & Søn, Ltd', 'Nobody Here'])
      .order('name'),
    'in',
  );
  assert.deepEqual(
    res.data.map((r) => r.name),
    ['Acme SARL', 'Café Crème', 'Zoë & Søn, Ltd'],
  );
});

test('or across operators, values with spaces', async () => {
  const res = ok(
    await db
      .from('organizations')
      .select('name')
      .or('name.eq.Acme SARL,name.ilike.*gmbh*')
      .order('name'),
    'or',
  );
  assert.deepEqual(
    res.data.map((r) => r.name),
    ['Acme SARL', 'Müller GmbH'],
  );
});

test('like and not.in with spaces', async () => {
  const like = ok(await db.from('organizations').select('name').like('name', '% SARL'), 'like');
  assert.deepEqual(like.data, [{ name: 'Acme SARL' }]);
  const notIn = ok(
    await db
      .from('organizations')
      .select('name')
      .not('name', 'in', '("Acme SARL","Müller GmbH")')
      .order('name'),
    'not in',
  );
  assert.deepEqual(
    notIn.data.map((r) => r.name),
    ['Café Crème', 'Plus+Sign', 'Zoë & Søn, Ltd'],
  );
});

test('order + range with count exact: 206 and the total', async () => {
  const res = ok(
    await db
      .from('contacts')
      .select('email', { count: 'exact' })
      .order('email', { ascending: false })
      .range(5, 9),
    'range',
  );
  // PostgREST: a partial range answers 206 with Content-Range 5-9/25.
  assert.equal(res.status, 206);
  assert.equal(res.count, CONTACTS);
  assert.deepEqual(
    res.data.map((r) => r.email),
    ['c19', 'c18', 'c17', 'c16', 'c15'].map((c) => `${c}@example.test`),
  );
  // The whole set in one range: 200, count still exact.
  const all = ok(
    await db.from('contacts').select('email', { count: 'exact' }).range(0, CONTACTS - 1),
    'full range',
  );
  assert.equal(all.status, 200);
  assert.equal(all.count, CONTACTS);
  assert.equal(all.data.length, CONTACTS);
  // head: count only, no rows.
  const head = ok(
    await db
      .from('contacts')
      .select('*', { count: 'exact', head: true })
      .eq('organization_name', 'Acme SARL'),
    'head count',
  );
  assert.equal(head.count, CONTACTS / ORGS.length);
  assert.equal(head.data, null);
});

test('upsert with onConflict merges; ignoreDuplicates keeps the row', async () => {
  const first = ok(
    await db
      .from('email_templates')
      .upsert({ name: 'Welcome mail', subject: 'v1' }, { onConflict: 'user_id,name' })
      .select('name,subject'),
    'upsert insert',
  );
  assert.equal(first.status, 201);
  assert.deepEqual(first.data, [{ name: 'Welcome mail', subject: 'v1' }]);
  const merged = ok(
    await db
      .from('email_templates')
      .upsert({ name: 'Welcome mail', subject: 'v2' }, { onConflict: 'user_id,name' })
      .select('name,subject'),
    'upsert merge',
  );
  assert.deepEqual(merged.data, [{ name: 'Welcome mail', subject: 'v2' }]);
  const ignored = ok(
    await db
      .from('email_templates')
      .upsert(
        { name: 'Welcome mail', subject: 'v3' },
        { onConflict: 'user_id,name', ignoreDuplicates: true },
      )
      .select('name,subject'),
    'upsert ignore',
  );
  // PostgREST: ignored duplicates are not returned.
  assert.deepEqual(ignored.data, []);
  const stored = ok(
    await db.from('email_templates').select('name,subject').eq('name', 'Welcome mail'),
    'read back',
  );
  assert.deepEqual(stored.data, [{ name: 'Welcome mail', subject: 'v2' }]);
});

test('a unique violation is 409 with code 23505', async () => {
  const res = await db.from('organizations').insert({ name: 'acme sarl' });
  assert.equal(res.status, 409);
  assert.equal(res.error?.code, '23505');
});

test('rpc with named arguments', async () => {
  const res = ok(
    await db.rpc('import_contacts', {
      rows: [
        { email: 'rpc-one@example.test', organization: 'Acme SARL' },
        { email: 'rpc-two@example.test', organization: 'New Org Ltd' },
      ],
    }),
    'rpc import_contacts',
  );
  assert.equal(res.status, 200);
  assert.equal(typeof res.data, 'object');
  const created = ok(
    await db.from('organizations').select('name').eq('name', 'New Org Ltd'),
    'organization created by the rpc',
  );
  assert.equal(created.data.length, 1);
  // A function returning a table of its own (`returns table (...)`): rows
  // as PostgREST returns them. (postrust 3.1 shapes - filters, orders -
  // only the results of functions returning a table type it knows, and
  // ignores those query parameters here; README "The local stack".)
  const rows = ok(
    await db.rpc('import_rows', {
      rows: [
        { email: 'B@example.test', organization: 'Acme  SARL' },
        { email: 'a@example.test', organization: 'Café Crème' },
        { email: 'b@example.test', organization: 'Acme SARL' },
      ],
    }),
    'rpc import_rows',
  );
  assert.deepEqual(
    [...rows.data].sort((x, y) => x.email.localeCompare(y.email)),
    [
      { email: 'a@example.test', organization: 'Café Crème' },
      { email: 'b@example.test', organization: 'Acme SARL' },
    ],
  );
});

test('single(): one object; none or several is PGRST116 with 406', async () => {
  const one = ok(
    await db.from('organizations').select('name').eq('name', 'Café Crème').single(),
    'single',
  );
  assert.deepEqual(one.data, { name: 'Café Crème' });
  const none = await db.from('organizations').select('name').eq('name', 'No Such Org').single();
  assert.equal(none.status, 406);
  assert.equal(none.error?.code, 'PGRST116');
  const many = await db.from('organizations').select('name').single();
  assert.equal(many.status, 406);
  assert.equal(many.error?.code, 'PGRST116');
  const maybe = ok(
    await db.from('organizations').select('name').eq('name', 'No Such Org').maybeSingle(),
    'maybeSingle',
  );
  assert.equal(maybe.data, null);
});

test('update and delete with a filter holding a space', async () => {
  const upd = ok(
    await db
      .from('contacts')
      .update({ organization_name: 'Müller GmbH' })
      .eq('organization_name', 'Acme SARL')
      .select('email'),
    'update',
  );
  assert.equal(upd.data.length, CONTACTS / ORGS.length + 1); // + the rpc's contact
  const del = ok(
    await db.from('email_templates').delete().eq('name', 'Welcome mail').select('name'),
    'delete',
  );
  assert.deepEqual(del.data, [{ name: 'Welcome mail' }]);
});

test('anon is refused the table, never shown these rows', async () => {
  const anon = createClient(url, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  const res = await anon.from('organizations').select('name').eq('user_id', userId);
  // anon has no grant on the table: refused, never this user's rows.
  assert.ok(res.error, 'anon must be refused');
  assert.ok([401, 403].includes(res.status), `status ${res.status}`);
});
