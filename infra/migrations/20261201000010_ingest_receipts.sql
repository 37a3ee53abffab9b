-- migrate:up

-- The webhook ingest writes the accepted receipt when it accepts a delivery (a resend is then a
-- duplicate even before the first is applied), so an organisation's pending events are its
-- accepted receipts without a sync log entry yet. This covers that count (GET sync/status):
-- the organisation's accepted receipts of the last days, delivery ids included, from the index
-- alone; each is then looked up in portal_sync_events' (organization_id, event_id) key.
create index webhook_receipts_accepted_org on webhook_receipts (organization_id, received_at)
    include (delivery_id) where outcome = 'accepted';

-- migrate:down

drop index if exists webhook_receipts_accepted_org;
