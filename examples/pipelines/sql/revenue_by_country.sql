SELECT c.country, o.status, count(*) AS orders, round(sum(o.amount), 2) AS revenue
FROM orders_raw o
JOIN customers_raw c ON c.id = o.customer_id
WHERE o.status <> 'returned'
GROUP BY ALL
ORDER BY ALL
