-- +goose Up
-- A client's own message_id and references, kept as given when they are not
-- what goes on the wire (the seed contract has them as free-form strings);
-- message_id and references_header stay the valid RFC 5322 values sent.
ALTER TABLE messages ADD COLUMN client_message_id text NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN client_references text NOT NULL DEFAULT '';

-- The internal inbox is a mailbox per recipient: each entry is the
-- recipient's own copy (what it was sent, without anyone's Bcc), with its
-- own read state and folder, and survives the sender deleting the message.
ALTER TABLE mailbox_entries DROP CONSTRAINT mailbox_entries_subscription_id_message_id_fkey;
ALTER TABLE mailbox_entries
    ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN kind text NOT NULL DEFAULT 'to' CHECK (kind IN ('to', 'cc', 'bcc')),
    ADD COLUMN folder text NOT NULL DEFAULT 'inbox' CHECK (folder ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    ADD COLUMN read_at timestamptz,
    ADD COLUMN sender_email text NOT NULL DEFAULT '',
    ADD COLUMN sender_display_name text NOT NULL DEFAULT '',
    ADD COLUMN subject text NOT NULL DEFAULT '',
    ADD COLUMN body text NOT NULL DEFAULT '',
    ADD COLUMN header_message_id text NOT NULL DEFAULT '',
    ADD COLUMN in_reply_to text NOT NULL DEFAULT '',
    ADD COLUMN references_header text NOT NULL DEFAULT '',
    ADD COLUMN conversation_id uuid,
    ADD COLUMN to_list jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN cc_list jsonb NOT NULL DEFAULT '[]';
-- Entries delivered before this version take their copy from the message.
UPDATE mailbox_entries e SET sender_email = m.sender_email, sender_display_name = m.sender_display_name,
    subject = m.subject, body = m.body, header_message_id = m.message_id, in_reply_to = m.in_reply_to,
    references_header = m.references_header, conversation_id = m.conversation_id,
    kind = coalesce((SELECT r.kind FROM message_recipients r WHERE r.subscription_id = e.subscription_id
                     AND r.message_id = e.message_id AND r.account_id = e.account_id ORDER BY r.position LIMIT 1), 'to'),
    to_list = coalesce((SELECT jsonb_agg(jsonb_build_object('display_name', r.display_name, 'email_address', r.email) ORDER BY r.position)
                        FROM message_recipients r WHERE r.subscription_id = e.subscription_id AND r.message_id = e.message_id AND r.kind = 'to'), '[]'),
    cc_list = coalesce((SELECT jsonb_agg(jsonb_build_object('display_name', r.display_name, 'email_address', r.email) ORDER BY r.position)
                        FROM message_recipients r WHERE r.subscription_id = e.subscription_id AND r.message_id = e.message_id AND r.kind = 'cc'), '[]')
FROM messages m WHERE m.subscription_id = e.subscription_id AND m.id = e.message_id;
CREATE UNIQUE INDEX mailbox_entries_id_key ON mailbox_entries (subscription_id, id);
CREATE INDEX mailbox_entries_folder_idx ON mailbox_entries (subscription_id, account_id, folder, received_at DESC, id DESC);

-- +goose Down
DROP INDEX mailbox_entries_folder_idx;
DROP INDEX mailbox_entries_id_key;
ALTER TABLE mailbox_entries DROP COLUMN id, DROP COLUMN kind, DROP COLUMN folder, DROP COLUMN read_at,
    DROP COLUMN sender_email, DROP COLUMN sender_display_name, DROP COLUMN subject, DROP COLUMN body,
    DROP COLUMN header_message_id, DROP COLUMN in_reply_to, DROP COLUMN references_header,
    DROP COLUMN conversation_id, DROP COLUMN to_list, DROP COLUMN cc_list;
DELETE FROM mailbox_entries e WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.subscription_id = e.subscription_id AND m.id = e.message_id);
ALTER TABLE mailbox_entries ADD FOREIGN KEY (subscription_id, message_id) REFERENCES messages (subscription_id, id) ON DELETE CASCADE;
ALTER TABLE messages DROP COLUMN client_references;
ALTER TABLE messages DROP COLUMN client_message_id;
