-- +goose Up
-- A mailbox entry is the recipient's own copy and outlives the sender's
-- message (00010), so it needs its own hold on the message's attachments:
-- message_attachments goes with the message, and the purge job would then
-- take files a recipient can still open. The foreign key to attachments
-- keeps a referenced file from being deleted.
CREATE TABLE mailbox_entry_attachments (
    subscription_id uuid NOT NULL,
    entry_id        uuid NOT NULL,
    position        int NOT NULL,
    attachment_id   uuid NOT NULL,
    PRIMARY KEY (subscription_id, entry_id, position),
    FOREIGN KEY (subscription_id, entry_id) REFERENCES mailbox_entries (subscription_id, id) ON DELETE CASCADE,
    FOREIGN KEY (subscription_id, attachment_id) REFERENCES attachments (subscription_id, id)
);
CREATE INDEX mailbox_entry_attachments_attachment_idx ON mailbox_entry_attachments (subscription_id, attachment_id);

ALTER TABLE mailbox_entry_attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE mailbox_entry_attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mailbox_entry_attachments
    USING (subscription_id = mailgate_tenant() OR mailgate_operator())
    WITH CHECK (subscription_id = mailgate_tenant() OR mailgate_operator());

-- Every path that delivers into a mailbox (internal recipients at delivery,
-- received replies) inserts the entry while its message and that message's
-- attachments exist; the trigger copies the list then, whichever path it was.
-- +goose StatementBegin
CREATE FUNCTION mailgate_copy_entry_attachments() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailbox_entry_attachments (subscription_id, entry_id, position, attachment_id)
    SELECT ma.subscription_id, NEW.id, ma.position, ma.attachment_id
    FROM message_attachments ma
    WHERE ma.subscription_id = NEW.subscription_id AND ma.message_id = NEW.message_id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER mailbox_entries_copy_attachments AFTER INSERT ON mailbox_entries
    FOR EACH ROW EXECUTE FUNCTION mailgate_copy_entry_attachments();

-- Entries delivered before this version hold the attachments their message
-- still has.
INSERT INTO mailbox_entry_attachments (subscription_id, entry_id, position, attachment_id)
SELECT e.subscription_id, e.id, ma.position, ma.attachment_id
FROM mailbox_entries e
JOIN message_attachments ma ON ma.subscription_id = e.subscription_id AND ma.message_id = e.message_id;

-- Inbound retention deletes settled rows by age, oldest first.
CREATE INDEX inbound_messages_settled_idx ON inbound_messages (received_at) WHERE status <> 'received';

-- +goose Down
DROP INDEX inbound_messages_settled_idx;
DROP TRIGGER mailbox_entries_copy_attachments ON mailbox_entries;
DROP FUNCTION mailgate_copy_entry_attachments();
DROP TABLE mailbox_entry_attachments;
