-- Two indexes that others cover (every row written paid for them): costs_show (owner, show_id)
-- is the prefix of costs_show_created, inventory_sku (owner, sku) the prefix of inventory_sku_id.
DROP INDEX IF EXISTS costs_show;
DROP INDEX IF EXISTS inventory_sku;
