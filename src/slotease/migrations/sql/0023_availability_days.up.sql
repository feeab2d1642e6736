-- Reserved; filled by its change.
set local lock_timeout = '5s';
select 1;
