with source as (

    select * from {{ source('lake', 'iqvia_rx') }}

),

renamed as (

    select
        prescriber_id,
        npi,
        ndc11,
        cast(week_ending as date) as week_ending,
        payer_type,
        channel,
        cast(nrx as bigint) as nrx,
        cast(trx as bigint) as trx,
        cast(nbrx as bigint) as nbrx,
        cast(nqty as double precision) as nqty,
        cast(tqty as double precision) as tqty,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
