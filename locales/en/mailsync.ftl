# mailsync's messages in English (the default). Each id has its French
# twin in locales/fr/mailsync.ftl; numbers are written by the code
# (src/i18n), so `{ $count }` shows 12,480.

test-count = { $count ->
    [one] { $count } campaign
   *[other] { $count } campaigns
}

## campaigns watch

watch-summary = { $contacts ->
        [one] { $contacts } contact
       *[other] { $contacts } contacts
    } · { $organizations ->
        [one] { $organizations } organisation
       *[other] { $organizations } organisations
    } · { $active ->
        [one] { $active } active campaign
       *[other] { $active } active campaigns
    } · { $sent_today ->
        [one] { $sent_today } email sent today
       *[other] { $sent_today } emails sent today
    }
watch-sending = Sending in progress ({ $count })
watch-none-sending = No campaign is sending.
watch-finished = Completed campaigns ({ $count })
watch-none-finished = No completed campaign yet.
watch-more = … and { $count } more
watch-completed-at = completed { $at }
watch-eta = ETA { $eta }
watch-sent-of = { $sent } sent of { $total }
watch-delivered = { $count } delivered
watch-failed = { $count } failed
watch-bounced = { $count } bounced
watch-success = success { $rate }
watch-polling = polling every { $seconds }
watch-joining = { $polling } (joining Supabase Realtime…)
watch-live = live (Supabase Realtime)
watch-reconnecting-realtime = { $polling } (reconnecting to Realtime: { $reason })
watch-realtime-refused = { $polling } ({ $reason }; trying Realtime again in { $seconds })
watch-realtime-closed = { $polling } (Realtime closed)
watch-retrying = reconnecting… retrying in { $seconds } ({ $reason })

## progress (indicatif's keys such as {count} are passed as arguments)

progress-eta = ETA { $eta }
progress-rows = { $count } rows
import-progress = Importing
import-progress-contacts = { $count }/{ $total } contacts
import-reading = Reading { $sheet }
export-progress = exporting: { $count } contacts ({ $rate })

## table headings

col-id = id
col-name = name
col-status = status
col-created = created
col-emails = emails
col-sent = sent
col-delivered = delivered
col-bounced = bounced
col-failed = failed
col-success = success

## campaigns list, dashboard

campaigns-count = { $count ->
    [one] { $count } campaign
   *[other] { $count } campaigns
}
dashboard-contacts = contacts
dashboard-organisations = organisations
dashboard-active-campaigns = active campaigns
dashboard-sent-today = emails sent today
col-row = row
col-organisation = organisation
col-email = email
col-reason = reason

## import summary

import-done = Imported { $file } ({ $sheet }): { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    } in { $seconds }
import-dry-run = Dry run of { $file } ({ $sheet }): { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    } would be imported; nothing was written
import-strict-refused = { $file } ({ $sheet }): { $count ->
        [one] { $count } row rejected
       *[other] { $count } rows rejected
    }; --strict: nothing was written
import-interrupted = Interrupted: { $written } of { $total } contacts of { $file } were imported
import-partial = { $written } of { $total } contacts were imported before the failure ({ $created } created, { $updated } updated, { $unchanged } unchanged)
import-col-rows = rows
import-rows-read = data rows read
import-blank = blank (skipped)
import-rejected = rejected
import-duplicates = duplicate emails (last row kept)
import-created = contacts created
import-updated = contacts updated
import-unchanged = contacts unchanged
import-organisations-created = organisations created
import-to-import = contacts to import
import-rejected-rows = Rejected rows:
import-more-rejects = … and { $count } more (--rejects PATH writes them all to a CSV file)

## campaigns deliver ("sent" = left the sender: accepted or bounced)

deliver-progress = Delivering
deliver-progress-counts = sent { $sent } · bounced { $bounced } · failed { $failed }
deliver-dry-run = Dry run: { $queued ->
        [one] { $queued } email queued
       *[other] { $queued } emails queued
    }, { $unknown } with an unknown outcome; the SMTP server { $smtp } answers. Nothing was claimed or sent.
deliver-done = Delivered through { $smtp }: { $sent } sent ({ $accepted } accepted, { $bounced } bounced), { $failed } failed, { $suppressed } suppressed ({ $retries ->
        [one] { $retries } retry
       *[other] { $retries } retries
    }) in { $seconds }, { $rate }
deliver-released = { $count ->
        [one] { $count } claimed email was not tried and is pending again
       *[other] { $count } claimed emails were not tried and are pending again
    }
deliver-nothing = Nothing to deliver: no queued emails in your sending campaigns.

## prompts

prompt-yes-no = [y/N]
# Answers taken as yes besides y and yes, separated by spaces.
prompt-yes-answers = y yes
prompt-email = Email
prompt-password = Password
db-target = Target: { $target }
reset-confirm = This drops every mailsync table and all its rows in { $target }, then recreates the schema. Continue?
reset-no-terminal = refusing to reset { $target } without confirmation: no terminal to ask on (nothing was changed)
reset-no-terminal-hint = pass --yes to reset unattended
reset-cancelled = Reset cancelled: nothing changed.

## campaigns send ({ $organization } is send-of-organization or
## send-for-organization, or empty)

send-of-organization = {" "}of { $organization }
send-for-organization = {" "}for { $organization }

send-no-terminal = refusing to send { $name } without confirmation: no terminal to ask on (nothing was queued)
send-no-terminal-hint = pass --yes to send without asking
send-left-out = , { $count } unsubscribed or bounced left out
send-confirm = Queue campaign { $name } to { $recipients ->
        [one] { $recipients } recipient
       *[other] { $recipients } recipients
    }{ $organization }?
send-confirm-continue = Continue queueing campaign { $name } ({ $queued ->
        [one] { $queued } email
       *[other] { $queued } emails
    } queued so far, { $recipients ->
        [one] { $recipients } recipient
       *[other] { $recipients } recipients
    } in all{ $organization })?
send-cancelled = Not sent: nothing changed.
send-progress = Queueing
send-progress-contacts = of { $total } contacts
send-progress-queued = { $count } queued
send-queued = Campaign { $name } is { $status }: { $count ->
        [one] { $count } email
       *[other] { $count } emails
    } queued{ $organization }
send-already-queued = Campaign { $name } was already queued: { $count ->
        [one] { $count } email
       *[other] { $count } emails
    }{ $organization }, nothing more to queue; it is { $status }
send-queued-resumed = Campaign { $name } is { $status }: { $count } emails queued{ $organization } ({ $now } by this run, the rest by an earlier one)
send-suppressed = { $count ->
        [one] { $count } contact left out
       *[other] { $count } contacts left out
    }: unsubscribed or bounced (mailsync contacts unsubscribe --undo EMAIL takes one back)
send-next = Deliver it with: mailsync campaigns deliver; follow it with: mailsync campaigns watch --until-done

## errors ($what is what was being done, e.g. "creating the template")

error-line = error: { $message }
hint-line = hint: { $hint }
detail-line = detail: { $detail }
error-not-signed-in = not signed in to { $project }
error-not-signed-in-hint = run `mailsync login`, or set MAILSYNC_ACCESS_TOKEN (on the local stack: `scripts/local-stack.sh token <uuid>`)
error-no-campaign-id = no campaign with id { $id }
error-no-campaign-named = no campaign named { $text } or with an id starting { $text }
error-campaigns-ambiguous = { $count } campaigns match { $text }: { $matches }
hint-campaigns-list = `mailsync campaigns list` shows yours
hint-campaigns-list-ids = `mailsync campaigns list` shows yours, with their ids
hint-longer-prefix = name one by a longer id prefix (see `mailsync campaigns list`)
error-api-key-refused = { $what }: { $project } refused the API key in SUPABASE_ANON_KEY ({ $message })
hint-api-key = check SUPABASE_ANON_KEY: the project's anon (publishable) key, from its API settings
error-permission = { $what }: permission denied (row-level security or a missing privilege)
error-token-expired = your access token has expired
error-token-refused = the access token was refused (invalid, or for another project)
hint-local-token = the local stack has no Auth server: get a new token with `export MAILSYNC_ACCESS_TOKEN="$(scripts/local-stack.sh token <uuid>)"`
hint-login-again = sign in again with `mailsync login`, or set a fresh MAILSYNC_ACCESS_TOKEN
hint-db-apply = is the mailsync schema applied? run `mailsync db apply`
error-duplicate = { $what }: you already have { $object ->
        [template] a template
        [campaign-email] a campaign email
        [campaign] a campaign
        [organisation] an organisation
        [contact] a contact
       *[other] a record
    } { $value ->
        [none] with that name
       *[other] { $value }
    }
hint-duplicate = choose another name, or use the existing { $object ->
        [template] template
        [campaign-email] campaign email
        [campaign] campaign
        [organisation] organisation
        [contact] contact
       *[other] record
    }
error-missing-reference = { $what }: the { $object ->
        [template] template
        [campaign-email] campaign email
        [campaign] campaign
        [organisation] organisation
        [contact] contact
       *[other] record
    } it refers to does not exist (or is not yours)

## contacts, templates, report

col-subject = subject
contacts-count = { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    }
contacts-no-organisation = no organisation named { $name }
templates-count = { $count ->
        [one] { $count } template
       *[other] { $count } templates
    }
export-done = Exported { $count ->
        [one] { $count } contact
       *[other] { $count } contacts
    }{ $organization } to { $file } in { $seconds }
report-done = Wrote { $file }: campaign { $name }, { $count ->
        [one] { $count } recipient
       *[other] { $count } recipients
    }
unsubscribe-undone = { $count ->
        [one] { $count } address taken off the suppression list
       *[other] { $count } addresses taken off the suppression list
    }
unsubscribe-done = { $count ->
        [one] { $count } address unsubscribed
       *[other] { $count } addresses unsubscribed
    }: later sends leave them out, deliver skips them
template-created = Created template { $name }
campaign-created = Created campaign { $name } ({ $id }), status { $status }
campaign-send-next = Send it with: mailsync campaigns send { $id }

## import errors (row numbers are passed as text: never grouped)

import-error-strict = { $file }: { $count ->
        [one] { $count } row rejected
       *[other] { $count } rows rejected
    }; --strict wrote nothing
import-error-interrupted = interrupted: rows before { $row } are imported
import-error-interrupted-hint = run the same command again to finish (nothing is duplicated)
import-error-no-data = { $file }: sheet { $sheet } has no data rows{ $below_header ->
        [yes] {" "}below its header
       *[other] {""}
    }
import-error-no-email-column = { $file }: sheet { $sheet } has no column { $column } (the email column): its rows have { $count ->
        [one] { $count } column
       *[other] { $count } columns
    } (A to { $last })
import-hint-email-column = pass --email-column with a column from A to { $last }
import-hint-looks-like-emails = column { $letter } looks like emails: try --email-column { $letter }
import-seen-header = header row { $row }: { $cells }
import-seen-no-header = no header row
import-first-reason = ; first reason: row { $row } { $reason }
import-error-mostly-rejected = { $file }: { $rejected } of { $data } rows rejected, nothing was imported ({ $seen }; emails read from column { $email }, organisations from column { $organization }{ $why })
import-hint-check-rows = check the rows with --dry-run --rejects rejects.csv; choose the columns with --email-column and --org-column

## usage errors

watch-error-interval = --interval must be at least 0.5 seconds
login-error-email-flag = --email is required without a terminal
login-error-email-empty = an email is required
login-error-password-terminal = no terminal to ask for the password on
login-error-password-terminal-hint = pass --password-stdin and pipe it
