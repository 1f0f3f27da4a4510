CREATE TABLE IF NOT EXISTS public.daily_orders (day date PRIMARY KEY, orders bigint, amount double precision);
DELETE FROM public.daily_orders;
INSERT INTO public.daily_orders
SELECT placed::date, count(*), sum(amount) FROM public.orders GROUP BY 1;
