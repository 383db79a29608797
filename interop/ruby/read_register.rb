# Reads a register with GOV.UK's Ruby client (govuk-registers-api-client),
# unchanged, and prints what the client sees as one line of JSON; then, for
# each line read on standard input, calls `refresh_data` and prints again.
#
#   ruby read_register.rb CLIENT_LIB URL
#
# CLIENT_LIB is the client's `lib` folder; URL the register's base URL,
# `http://HOST/registers/NAME/` (the trailing slash matters: the client
# merges relative paths such as `download-rsf/0` onto it).

require 'json'
require 'uri'

lib, url = ARGV
abort 'usage: ruby read_register.rb CLIENT_LIB URL' if lib.nil? || url.nil?
$LOAD_PATH.unshift(lib)
require 'register_client_manager'

PAGE_SIZE = 100

def entry_json(entry)
  {
    'entry-number' => entry.entry_number,
    'key' => entry.key,
    'timestamp' => entry.timestamp,
    'item-hash' => entry.item_hash
  }
end

def record_json(record)
  entry_json(record.entry).merge('item' => record.item&.value)
end

def seen(client)
  {
    'records' => client.get_records.map { |record| record_json(record) },
    'entries' => client.get_entries.map { |entry| entry_json(entry) },
    'items' => client.get_items.map { |item| [item.hash, item.value] }.to_h,
    'history' => client.get_records_with_history.map do |history|
      [history[:key], history[:records].map { |record| entry_json(record.entry) }]
    end.to_h,
    'metadata-entries' => client.get_metadata_records_with_history.sum { |h| h[:records].length },
    'register-definition' => record_json(client.get_register_definition),
    'custodian' => client.get_custodian.item.value['custodian'],
    'field-definitions' => client.get_field_definitions.map { |record| record_json(record) }
  }
end

data_store = RegistersClient::InMemoryDataStore.new(page_size: PAGE_SIZE)
client = RegistersClient::RegisterClient.new(URI(url), data_store, PAGE_SIZE)
$stdout.sync = true
puts JSON.generate(seen(client))
$stdin.each_line do
  client.refresh_data
  puts JSON.generate(seen(client))
end
