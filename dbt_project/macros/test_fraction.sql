{#- A share or percentage: a fraction from 0 to 1 (0.45 means 45%), or null. The dashboards format it. -#}
{% test fraction(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}
